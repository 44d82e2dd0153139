"""Malformed requests against every endpoint of openapi.yaml: each is answered 4xx with a JSON
``{error_code, message}`` (never a 500, never an HTML page), and nothing already written changes.

The cases are listed per endpoint; ``test_every_endpoint_has_bad_cases`` fails when openapi.yaml
gains an endpoint that has none here.
"""

from __future__ import annotations

import asyncio
import json
import os
from io import BytesIO
from dataclasses import dataclass, field

import pytest
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders
from tornado.simple_httpclient import HTTPTimeoutError

from tests.contract import Contract

CONTRACT = Contract()
BIG = "99999999999999999999"  # beyond int64
INT64_PLUS_1 = str(2**63)
NUL = "%00"
UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
_UNSET = object()


@dataclass
class Case:
    method: str
    template: str  # the endpoint of openapi.yaml this case is aimed at
    what: str
    query: str = ""  # raw (already URL-encoded) query string
    body: object = _UNSET  # dict/list -> JSON; bytes/str -> sent as they are
    params: dict = field(default_factory=dict)  # raw path parameter values (URL-encoded)
    websocket: bool = False

    def path(self, samples: dict) -> str:
        path = self.template
        for key in CONTRACT.path_parameters(self.template):
            path = path.replace("{%s}" % key, self.params.get(key, samples[key]))
        return path.rstrip("/") if path != "/" else ""

    def payload(self):
        if self.body is _UNSET:
            return "{}" if self.method in ("POST", "PATCH", "PUT") else None
        if isinstance(self.body, (bytes, str)):
            return self.body
        return json.dumps(self.body)


def submit(**change) -> dict:
    body = {"experiment": "bad", "source_directory": "{scripts}", "script": "count.py"}
    body.update(change)
    return body


def deep(n: int = 100_000) -> str:
    return "[" * n + "]" * n


C = Case
RUN_CASES = [
    C("POST", "/runs", "python is a number", body=submit(python=3)),
    C("POST", "/runs", "python is relative", body=submit(python="python3")),
    C("POST", "/runs", "NUL in source_directory", body=submit(source_directory="/tmp/a\x00b")),
    C("POST", "/runs", "source_directory component too long", body=submit(source_directory="/" + "a" * 300)),
    C("POST", "/runs", "NUL in an argument", body=submit(arguments=["--lr", "1\x00"])),
    C("POST", "/runs", "arguments is a string", body=submit(arguments="--lr 1")),
    C("POST", "/runs", "an argument is a list", body=submit(arguments=[[1]])),
    C("POST", "/runs", "an argument is infinite", body=b'{"experiment": "bad", "script": "count.py", '
      b'"extra_files": {"count.py": "1"}, "arguments": [1e400]}'),
    C("POST", "/runs", "an argument is NaN", body=b'{"experiment": "bad", "script": "count.py", '
      b'"extra_files": {"count.py": "1"}, "arguments": [NaN]}'),
    C("POST", "/runs", "environment variable value is a number",
      body=submit(environment_variables={"LR": 5})),
    C("POST", "/runs", "NUL in an environment variable name",
      body=submit(environment_variables={"A\x00B": "1"})),
    C("POST", "/runs", "environment variable name with '='", body=submit(environment_variables={"A=B": "1"})),
    C("POST", "/runs", "NUL in an environment variable value",
      body=submit(environment_variables={"A": "1\x00"})),
    C("POST", "/runs", "environment_variables is a list", body=submit(environment_variables=["A=1"])),
    C("POST", "/runs", "body is a JSON array", body=[submit()]),
    C("POST", "/runs", "body is not JSON", body="experiment=bad&script=count.py"),
    C("POST", "/runs", "body is not UTF-8", body=b'{"experiment": "b\xff\xfe", "script": "count.py"}'),
    C("POST", "/runs", "body nested 100,000 deep", body=deep()),
    C("POST", "/runs", "unknown field", body=submit(priority="high")),
    C("POST", "/runs", "distributed.nodes is a string", body=submit(distributed={"nodes": "2"})),
    C("POST", "/runs", "distributed.nodes beyond int64", body=submit(distributed={"nodes": 10**20})),
    C("POST", "/runs", "distributed.nodes is 0", body=submit(distributed={"nodes": 0})),
    C("POST", "/runs", "distributed.procs_per_node is a float",
      body=submit(distributed={"procs_per_node": 1.5})),
    C("POST", "/runs", "distributed.max_restarts is negative", body=submit(distributed={"max_restarts": -1})),
    C("POST", "/runs", "distributed.kind unknown", body=submit(distributed={"kind": "horovod"})),
    C("POST", "/runs", "distributed unknown field", body=submit(distributed={"node": 2})),
    C("POST", "/runs", "distributed is a string", body=submit(distributed="pytorch")),
    C("POST", "/runs", "environment version beyond int64",
      body=submit(environment={"name": "Curated-PyTorch", "version": 10**20})),
    C("POST", "/runs", "environment is a string", body=submit(environment="Curated-PyTorch")),
    C("POST", "/runs", "environment.pip_packages is a string",
      body=submit(environment={"name": "e", "pip_packages": "torch"})),
    C("POST", "/runs", "a tag is an object", body=submit(tags={"a": {"b": 1}})),
    C("POST", "/runs", "tags is a list", body=submit(tags=["a"])),
    C("POST", "/runs", "experiment with path traversal", body=submit(experiment="../evil")),
    C("POST", "/runs", "experiment is a number", body=submit(experiment=5)),
    C("POST", "/runs", "script with path traversal", body=submit(script="../../../etc/passwd")),
    C("POST", "/runs", "extra_files path traversal", body=submit(extra_files={"../x.py": "1"})),
    C("POST", "/runs", "NUL in extra_files text", body=submit(extra_files={"x.py": "print(1)\x00"})),
    C("POST", "/runs", "unknown compute target", body=submit(compute_target="nowhere")),
    C("POST", "/runs", "missing script", body={"experiment": "bad", "source_directory": "/tmp"}),
    C("GET", "/runs", "limit beyond int64", query=f"limit={BIG}"),
    C("GET", "/runs", "limit 2**63", query=f"limit={INT64_PLUS_1}"),
    C("GET", "/runs", "limit negative", query="limit=-5"),
    C("GET", "/runs", "limit zero", query="limit=0"),
    C("GET", "/runs", "limit is a float", query="limit=1.5"),
    C("GET", "/runs", "limit is a word", query="limit=many"),
    C("GET", "/runs", "limit is not UTF-8", query="limit=%ff"),
    C("GET", "/runs", "status unknown", query="status=Sleeping"),
    C("GET", "/runs", "NUL in experiment", query=f"experiment=a{NUL}"),
    C("GET", "/runs", "unknown query parameter", query="limt=5"),
    C("GET", "/runs/{run_id}", "no such run", params={"run_id": "nope_1_2"}),
    C("GET", "/runs/{run_id}", "run id '..'", params={"run_id": ".."}),
    C("GET", "/runs/{run_id}", "NUL in the run id", params={"run_id": f"a{NUL}b"}),
    C("GET", "/runs/{run_id}", "unknown query parameter", query="verbose=1"),
    C("PATCH", "/runs/{run_id}", "tags is a string", body={"tags": "a=b"}),
    C("PATCH", "/runs/{run_id}", "a tag is an object", body={"tags": {"a": {"b": 1}}}),
    C("PATCH", "/runs/{run_id}", "NUL in a tag name", body={"tags": {"a\x00": "1"}}),
    C("PATCH", "/runs/{run_id}", "no tags", body={}),
    C("PATCH", "/runs/{run_id}", "unknown field", body={"tags": {}, "status": "Completed"}),
    C("PATCH", "/runs/{run_id}", "body is a JSON array", body=[{"tags": {}}]),
    C("PATCH", "/runs/{run_id}", "body is not JSON", body="tags=a"),
    C("PATCH", "/runs/{run_id}", "no such run", params={"run_id": "nope_1_2"}, body={"tags": {"a": "1"}}),
    C("POST", "/runs/{run_id}/cancel", "no such run", params={"run_id": "nope_1_2"}),
    C("POST", "/runs/{run_id}/cancel", "run id '..'", params={"run_id": ".."}),
    C("POST", "/runs/{run_id}/cancel", "unknown query parameter", query="force=1"),
    C("POST", "/runs/{run_id}/resubmit", "no such run", params={"run_id": "nope_1_2"}),
    C("POST", "/runs/{run_id}/resubmit", "NUL in the run id", params={"run_id": f"x{NUL}"}),
    C("GET", "/runs/{run_id}/logs", "no such run", params={"run_id": "nope_1_2"}),
    C("GET", "/runs/{run_id}/logs", "unknown query parameter", query="all=1"),
    C("GET", "/runs/{run_id}/logs/{name}", "offset beyond int64", query=f"offset={BIG}"),
    C("GET", "/runs/{run_id}/logs/{name}", "offset 2**63", query=f"offset={INT64_PLUS_1}"),
    C("GET", "/runs/{run_id}/logs/{name}", "offset negative", query="offset=-1"),
    C("GET", "/runs/{run_id}/logs/{name}", "limit zero", query="limit=0"),
    C("GET", "/runs/{run_id}/logs/{name}", "limit over the maximum", query="limit=2000000"),
    C("GET", "/runs/{run_id}/logs/{name}", "limit beyond int64", query=f"limit={BIG}"),
    C("GET", "/runs/{run_id}/logs/{name}", "limit is a word", query="limit=all"),
    C("GET", "/runs/{run_id}/logs/{name}", "path traversal", params={"name": "../spec.json"}),
    C("GET", "/runs/{run_id}/logs/{name}", "encoded path traversal", params={"name": "..%2F..%2Ftrain.db"}),
    C("GET", "/runs/{run_id}/logs/{name}", "NUL in the name", params={"name": f"rank_0.txt{NUL}"}),
    C("GET", "/runs/{run_id}/metrics", "cursor beyond int64", query=f"cursor={BIG}"),
    C("GET", "/runs/{run_id}/metrics", "cursor 2**63", query=f"cursor={INT64_PLUS_1}"),
    C("GET", "/runs/{run_id}/metrics", "cursor negative", query="cursor=-1"),
    C("GET", "/runs/{run_id}/metrics", "cursor is a float", query="cursor=1e3"),
    C("GET", "/runs/{run_id}/metrics", "limit zero", query="limit=0"),
    C("GET", "/runs/{run_id}/metrics", "limit beyond int64", query=f"limit={BIG}"),
    C("GET", "/runs/{run_id}/metrics", "no such run", params={"run_id": "nope_1_2"}),
    C("GET", "/runs/{run_id}/metrics", "NUL in the metric name", query=f"name=loss{NUL}"),
    C("GET", "/runs/{run_id}/metrics", "rank beyond int64", query=f"rank={BIG}"),
    C("GET", "/runs/{run_id}/metrics/series", "points negative", query="points=-1"),
    C("GET", "/runs/{run_id}/metrics/series", "points beyond int64", query=f"points={BIG}"),
    C("GET", "/runs/{run_id}/metrics/series", "points is a word", query="points=all"),
    C("GET", "/runs/{run_id}/metrics/series", "rank negative", query="rank=-1"),
    C("GET", "/runs/{run_id}/metrics/series", "NUL in the metric name", query=f"name={NUL}"),
    C("GET", "/runs/{run_id}/metrics/series", "unknown query parameter", query="bucket=10"),
    C("GET", "/runs/{run_id}/metrics/series", "times is a word", query="times=maybe"),
    C("GET", "/runs/{run_id}/metrics/series", "no such run", params={"run_id": "nope_1_2"}),
    C("GET", "/runs/{run_id}/files", "no such run", params={"run_id": "nope_1_2"}),
    C("GET", "/runs/{run_id}/files", "unknown query parameter", query="glob=*"),
    C("GET", "/runs/{run_id}/files/{name}", "path traversal", params={"name": "outputs/../../spec.json"}),
    C("GET", "/runs/{run_id}/files/{name}", "absolute path", params={"name": "%2Fetc%2Fpasswd"}),
    C("GET", "/runs/{run_id}/files/{name}", "NUL in the name", params={"name": f"outputs/result.txt{NUL}"}),
    C("GET", "/runs/{run_id}/files/{name}", "outside outputs/ and logs/", params={"name": "spec.json"}),
    C("GET", "/runs/{run_id}/files/{name}", "no such file", params={"name": "outputs/nope.txt"}),
    C("GET", "/runs/{run_id}/snapshot", "no such run", params={"run_id": "nope_1_2"}),
    C("GET", "/runs/{run_id}/snapshot", "unknown query parameter", query="glob=*"),
    C("GET", "/runs/{run_id}/snapshot/{name}", "path traversal", params={"name": "..%2F..%2Fspec.json"}),
    C("GET", "/runs/{run_id}/snapshot/{name}", "absolute path", params={"name": "%2Fetc%2Fpasswd"}),
    C("GET", "/runs/{run_id}/snapshot/{name}", "NUL in the name", params={"name": f"count.py{NUL}"}),
    C("GET", "/runs/{run_id}/snapshot/{name}", "no such file", params={"name": "nope.py"}),
    C("GET", "/runs/{run_id}/snapshot/{name}", "no such run", params={"run_id": "nope_1_2", "name": "count.py"}),
    C("GET", "/runs/{run_id}/stream", "cursor beyond int64", query=f"cursor={BIG}", websocket=True),
    C("GET", "/runs/{run_id}/stream", "cursor negative", query="cursor=-1", websocket=True),
    C("GET", "/runs/{run_id}/stream", "cursor is a word", query="cursor=abc", websocket=True),
    C("GET", "/runs/{run_id}/stream", "logs not name:offset", query="logs=rank_0.txt", websocket=True),
    C("GET", "/runs/{run_id}/stream", "log offset beyond int64", query=f"logs=rank_0.txt:{BIG}00",
      websocket=True),
    C("GET", "/runs/{run_id}/stream", "no such run", params={"run_id": "nope_1_2"}, websocket=True),
    C("GET", "/runs/{run_id}/stream", "not a WebSocket upgrade"),
]

COMPUTE_CASES = [
    C("GET", "/computes", "unknown query parameter", query="kind=ray"),
    C("POST", "/computes", "unknown kind", body={"name": "{fresh}", "kind": "quantum"}),
    C("POST", "/computes", "kind local", body={"name": "{fresh}", "kind": "local"}),
    C("POST", "/computes", "NUL in the name", body={"name": "c\x001"}),
    C("POST", "/computes", "name with path traversal", body={"name": "../c1"}),
    C("POST", "/computes", "name is a number", body={"name": 7}),
    C("POST", "/computes", "body is a JSON array", body=[{"name": "{fresh}"}]),
    C("POST", "/computes", "body is not JSON", body="name=c1"),
    C("POST", "/computes", "body is not UTF-8", body=b'{"name": "c\xff"}'),
    C("POST", "/computes", "max_nodes beyond int64", body={"name": "{fresh}", "max_nodes": 10**20}),
    C("POST", "/computes", "max_nodes negative", body={"name": "{fresh}", "max_nodes": -1}),
    C("POST", "/computes", "max_nodes is a string", body={"name": "{fresh}", "max_nodes": "4"}),
    C("POST", "/computes", "min_nodes is a float", body={"name": "{fresh}", "min_nodes": 1.5}),
    C("POST", "/computes", "idle seconds infinite", body=b'{"name": "{fresh}", "idle_seconds_before_scaledown": 1e400}'),
    C("POST", "/computes", "vm_size beyond int64", body={"name": "{fresh}", "vm_size": f"cpu:{BIG}"}),
    C("POST", "/computes", "unknown field", body={"name": "{fresh}", "colour": "red"}),
    C("POST", "/computes", "docker volumes of numbers", body={"name": "{fresh}", "kind": "docker", "volumes": {"/a": 5}}),
    C("POST", "/computes", "ray node_shape is a string", body={"name": "{fresh}", "kind": "ray", "node_shape": "CPU"}),
    C("POST", "/computes", "name exists already", body={"name": "local"}),
    C("GET", "/computes/{name}", "no such compute", params={"name": "nowhere"}),
    C("GET", "/computes/{name}", "NUL in the name", params={"name": f"lo{NUL}cal"}),
    C("GET", "/computes/{name}", "name too long", params={"name": "a" * 300}),
    C("DELETE", "/computes/{name}", "built-in target", params={"name": "local"}),
    C("DELETE", "/computes/{name}", "no such compute", params={"name": "nowhere"}),
    C("DELETE", "/computes/{name}", "encoded path traversal", params={"name": "..%2F..%2Ftrain.db"}),
]

MODEL_CASES = [
    C("GET", "/models", "NUL in the name", query=f"name=m{NUL}"),
    C("GET", "/models", "NUL in a tag filter", query=f"tag=a{NUL}"),
    C("GET", "/models", "unknown query parameter", query="sort=name"),
    C("POST", "/models", "NUL in a local path", body={"name": "m2", "path": "/tmp/x\x00y"}),
    C("POST", "/models", "local path component too long", body={"name": "m2", "path": "/" + "a" * 300}),
    C("POST", "/models", "path traversal in a run", body={"name": "m2", "run_id": "{run}", "path": "../../train.db"}),
    C("POST", "/models", "name with path traversal", body={"name": "../m2", "run_id": "{run}",
                                                           "path": "outputs/result.txt"}),
    C("POST", "/models", "tags is a string", body={"name": "m2", "run_id": "{run}", "path": "outputs", "tags": "a"}),
    C("POST", "/models", "description is a number", body={"name": "m2", "run_id": "{run}", "path": "outputs",
                                                          "description": 5}),
    C("POST", "/models", "run_id is a number", body={"name": "m2", "run_id": 5, "path": "outputs"}),
    C("POST", "/models", "no path", body={"name": "m2", "run_id": "{run}"}),
    C("POST", "/models", "body is a JSON array", body=[]),
    C("POST", "/models", "body is not JSON", body="name=m2"),
    C("POST", "/models", "unknown field", body={"name": "m2", "run_id": "{run}", "path": "outputs", "model_path": "x"}),
    C("GET", "/models/{name}", "version beyond int64", query=f"version={BIG}"),
    C("GET", "/models/{name}", "version 2**63", query=f"version={INT64_PLUS_1}"),
    C("GET", "/models/{name}", "version is a word", query="version=latest"),
    C("GET", "/models/{name}", "version zero", query="version=0"),
    C("GET", "/models/{name}", "no such model", params={"name": "nope"}),
    C("GET", "/models/{name}/{version}", "version beyond int64", params={"version": BIG}),
    C("GET", "/models/{name}/{version}", "version 2**63", params={"version": INT64_PLUS_1}),
    C("GET", "/models/{name}/{version}", "negative version", params={"version": "-1"}),
    C("GET", "/models/{name}/{version}", "no such version", params={"version": "999"}),
    C("PATCH", "/models/{name}/{version}", "version beyond int64", params={"version": BIG}, body={"tags": {}}),
    C("PATCH", "/models/{name}/{version}", "tags is a string", body={"tags": "a"}),
    C("PATCH", "/models/{name}/{version}", "remove_tags is a string", body={"remove_tags": "a"}),
    C("PATCH", "/models/{name}/{version}", "remove_tags of numbers", body={"remove_tags": [1]}),
    C("PATCH", "/models/{name}/{version}", "description is a list", body={"description": ["x"]}),
    C("PATCH", "/models/{name}/{version}", "unknown field", body={"version": 3}),
    C("PATCH", "/models/{name}/{version}", "a set property changes", body={"properties": {"p": "other"}}),
    C("PATCH", "/models/{name}/{version}", "body is not JSON", body="tags"),
    C("DELETE", "/models/{name}/{version}", "version beyond int64", params={"version": BIG}),
    C("DELETE", "/models/{name}/{version}", "no such version", params={"version": "999"}),
    C("GET", "/models/{name}/{version}/files/{path}", "path traversal", params={"path": "../../../train.db"}),
    C("GET", "/models/{name}/{version}/files/{path}", "absolute path", params={"path": "%2Fetc%2Fpasswd"}),
    C("GET", "/models/{name}/{version}/files/{path}", "NUL in the path", params={"path": f"result.txt{NUL}"}),
    C("GET", "/models/{name}/{version}/files/{path}", "version beyond int64", params={"version": BIG}),
]

ENVIRONMENT_CASES = [
    C("GET", "/environments", "unknown query parameter", query="curated=1"),
    C("POST", "/environments", "reserved name", body={"name": "Curated-Mine"}),
    C("POST", "/environments", "Azure ML's reserved prefix", body={"name": "azureml-Mine"}),
    C("POST", "/environments", "name with path traversal", body={"name": "../env"}),
    C("POST", "/environments", "NUL in the name", body={"name": "env\x00"}),
    C("POST", "/environments", "pip_packages is a string", body={"name": "env", "pip_packages": "torch"}),
    C("POST", "/environments", "a pip package is a number", body={"name": "env", "pip_packages": [1]}),
    C("POST", "/environments", "a conda package without a name", body={"name": "env", "conda_packages": ["!!!"]}),
    C("POST", "/environments", "environment variable value is a number",
      body={"name": "env", "environment_variables": {"A": 1}}),
    C("POST", "/environments", "version is a word", body={"name": "env", "version": "one"}),
    C("POST", "/environments", "unknown field", body={"name": "env", "gpu": True}),
    C("POST", "/environments", "body is a JSON array", body=[{"name": "env"}]),
    C("POST", "/environments", "body is not JSON", body=b"\x00\x01"),
    C("GET", "/environments/{name}", "version beyond int64", query=f"version={BIG}"),
    C("GET", "/environments/{name}", "version is a word", query="version=latest"),
    C("GET", "/environments/{name}", "version negative", query="version=-1"),
    C("GET", "/environments/{name}", "no such environment", params={"name": "nope"}),
    C("GET", "/environments/{name}", "an Azure ML curated name with no counterpart here",
      params={"name": "AzureML-TensorFlow-2.4-Ubuntu18.04-Py37-CPU-Inference"}),
]

OTHER_CASES = [
    C("GET", "/", "unknown query parameter", query="debug=1"),
    C("GET", "/", "NUL in an unknown query parameter", query=f"x{NUL}=1"),
    C("GET", "/experiments", "unknown query parameter", query="limit=5"),
    C("GET", "/events", "not a WebSocket upgrade"),
    C("GET", "/events", "unknown query parameter", query="since=0", websocket=True),
]


DATA_CASES = [
    C("GET", "/datastores", "unknown query parameter", query="kind=local"),
    C("POST", "/datastores", "body is a JSON array", body=[]),
    C("POST", "/datastores", "no kind", body={"name": "st"}),
    C("POST", "/datastores", "unknown kind", body={"name": "st", "kind": "ftp", "url": "ftp://x"}),
    C("POST", "/datastores", "local path is relative", body={"name": "st", "kind": "local", "path": "data"}),
    C("POST", "/datastores", "local path with NUL", body={"name": "st", "kind": "local", "path": "/tmp/a\x00b"}),
    C("POST", "/datastores", "local path that is not there", body={"name": "st", "kind": "local", "path": "/nonexistent/x"}),
    C("POST", "/datastores", "fsspec without a URL", body={"name": "st", "kind": "fsspec"}),
    C("POST", "/datastores", "fsspec URL of an unknown protocol", body={"name": "st", "kind": "fsspec", "url": "nosuch://b/p"}),
    C("POST", "/datastores", "storage_options is a list", body={"name": "st", "kind": "fsspec", "url": "memory://x",
                                                                   "storage_options": [1]}),
    C("POST", "/datastores", "replaces the default store", body={"name": "workspaceblobstore", "kind": "workspace"}),
    C("POST", "/datastores", "name with path traversal", body={"name": "../st", "kind": "workspace"}),
    C("GET", "/datastores/{name}", "no such datastore", params={"name": "nope"}),
    C("POST", "/datastores/{name}/upload", "no source", body={}),
    C("POST", "/datastores/{name}/upload", "source is relative", body={"source": "data"}),
    C("POST", "/datastores/{name}/upload", "a file that leads out of the source",
      body={"source": "{scripts}", "files": ["../conftest.py"]}),
    C("POST", "/datastores/{name}/upload", "target_path leads out", body={"source": "{scripts}", "files": ["count.py"],
                                                                         "target_path": "../../escape"}),
    C("POST", "/datastores/{name}/upload", "files is a string", body={"source": "{scripts}", "files": "count.py"}),
    C("POST", "/datastores/{name}/upload", "into a store that is not the workspace's", params={"name": "nope"},
      body={"source": "{scripts}"}),
    C("GET", "/datastores/{name}/files", "no path pattern"),
    C("GET", "/datastores/{name}/files", "pattern leads out", query="path=../../train.db"),
    C("GET", "/datastores/{name}/files", "absolute pattern", query="path=/etc/passwd"),
    C("GET", "/datastores/{name}/files", "pattern names nothing", query="path=nothing/**"),
    C("GET", "/datastores/{name}/files", "NUL in the pattern", query=f"path=a{NUL}"),
    C("GET", "/datastores/{name}/files/{path}", "path traversal", params={"path": "..%2F..%2Ftrain.db"}),
    C("GET", "/datastores/{name}/files/{path}", "no such file", params={"path": "nope.txt"}),
    C("GET", "/datasets", "unknown query parameter", query="sort=name"),
    C("GET", "/datasets", "NUL in the name", query=f"name=d{NUL}"),
    C("POST", "/datasets", "body is not JSON", body="name=d"),
    C("POST", "/datasets", "no paths", body={"name": "d"}),
    C("POST", "/datasets", "paths is empty", body={"name": "d", "paths": []}),
    C("POST", "/datasets", "a path leads out", body={"name": "d", "paths": [{"path": "../../train.db"}]}),
    C("POST", "/datasets", "a path names nothing", body={"name": "d", "paths": [{"path": "nothing/**"}]}),
    C("POST", "/datasets", "no such datastore", body={"name": "d", "paths": [{"datastore": "nope", "path": "a"}]}),
    C("POST", "/datasets", "unknown kind", body={"name": "d", "kind": "image", "paths": [{"path": "a"}]}),
    C("POST", "/datasets", "tabular separator too long", body={"name": "d", "kind": "tabular", "paths": [{"path": "a"}],
                                                              "tabular": {"separator": "x" * 20}}),
    C("POST", "/datasets", "unknown field", body={"name": "d", "paths": [{"path": "a"}], "validate": True}),
    C("GET", "/datasets/{name}", "version is a word", query="version=latest"),
    C("GET", "/datasets/{name}", "no such dataset", params={"name": "nope"}),
    C("GET", "/datasets/{name}/{version}", "version beyond int64", params={"version": BIG}),
    C("GET", "/datasets/{name}/{version}", "no such version", params={"version": "999"}),
    C("GET", "/datasets/{name}/{version}/files/{path}", "path traversal", params={"path": "..%2F..%2Ftrain.db"}),
    C("GET", "/datasets/{name}/{version}/files/{path}", "no such file", params={"path": "nope.txt"}),
    C("POST", "/runs", "datasets is an object", body=submit(datasets={"d": 1})),
    C("POST", "/runs", "dataset input of no such dataset", body=submit(datasets=[{"name": "x", "dataset": "nope"}])),
    C("POST", "/runs", "dataset input name is not an identifier",
      body=submit(datasets=[{"name": "my-data", "dataset": "d"}])),
    C("POST", "/runs", "dataset input mode unknown", body=submit(datasets=[{"name": "x", "dataset": "d", "mode": "copy"}])),
    C("POST", "/runs", "dataset input version zero", body=submit(datasets=[{"name": "x", "dataset": "d", "version": 0}])),
]


def sweep(**change) -> dict:
    body = {"experiment": "bad", "run": {"source_directory": "{scripts}", "script": "count.py"},
            "parameter_space": {"--n": ["choice", [[1, 2]]]}, "primary_metric_name": "loss",
            "primary_metric_goal": "minimize", "max_total_runs": 2}
    body.update(change)
    return body


SWEEP_CASES = [
    C("POST", "/sweeps", "run holds the experiment", body=sweep(run={"experiment": "x", "script": "count.py",
                                                                      "source_directory": "{scripts}"})),
    C("POST", "/sweeps", "run lacks a script", body=sweep(run={"source_directory": "{scripts}"})),
    C("POST", "/sweeps", "run with path traversal", body=sweep(run={"script": "../../etc/passwd",
                                                                     "source_directory": "{scripts}"})),
    C("POST", "/sweeps", "run with an unknown field", body=sweep(run={"script": "count.py", "gpus": 8})),
    C("POST", "/sweeps", "empty parameter space", body=sweep(parameter_space={})),
    C("POST", "/sweeps", "expression is a string", body=sweep(parameter_space={"--n": "choice(1, 2)"})),
    C("POST", "/sweeps", "unknown expression", body=sweep(parameter_space={"--n": ["gauss", [0, 1]]})),
    C("POST", "/sweeps", "uniform low above high", body=sweep(parameter_space={"--n": ["uniform", [2, 1]]})),
    C("POST", "/sweeps", "uniform bound infinite", body=b'{"experiment": "bad", "run": {"script": "c.py", '
      b'"extra_files": {"c.py": "1"}}, "parameter_space": {"--n": ["uniform", [0, 1e400]]}, '
      b'"primary_metric_name": "a", "primary_metric_goal": "maximize", "max_total_runs": 1}'),
    C("POST", "/sweeps", "NUL in a hyperparameter name", body=sweep(parameter_space={"--n\x00": ["choice", [[1]]]})),
    C("POST", "/sweeps", "grid over a uniform", body=sweep(sampling="grid",
                                                            parameter_space={"--n": ["uniform", [0, 1]]})),
    C("POST", "/sweeps", "unknown sampling", body=sweep(sampling="sobol")),
    C("POST", "/sweeps", "unknown policy", body=sweep(policy={"name": "Hyperband"})),
    C("POST", "/sweeps", "bandit without slack", body=sweep(policy={"name": "BanditPolicy"})),
    C("POST", "/sweeps", "goal unknown", body=sweep(primary_metric_goal="up")),
    C("POST", "/sweeps", "max_total_runs zero", body=sweep(max_total_runs=0)),
    C("POST", "/sweeps", "max_total_runs beyond int64", body=sweep(max_total_runs=10**20)),
    C("POST", "/sweeps", "seed negative", body=sweep(seed=-1)),
    C("POST", "/sweeps", "max_duration_minutes zero", body=sweep(max_duration_minutes=0)),
    C("POST", "/sweeps", "unknown field", body=sweep(budget=5)),
    C("POST", "/sweeps", "body is a list", body=[sweep()]),
    C("POST", "/sweeps", "unknown compute target", body=sweep(run={"script": "count.py", "source_directory": "{scripts}",
                                                                   "compute_target": "nowhere"})),
    C("GET", "/runs", "parent is not a run id", query="parent=..%2Fetc"),
    C("GET", "/runs", "parent is unknown", query="parent=nobody_1"),
    C("GET", "/runs", "include_children is a word", query="include_children=maybe"),
]


def service(**change) -> dict:
    body = {"name": "bad-svc", "models": [{"name": "m"}], "entry_script": "count.py",
            "source_directory": "{scripts}"}
    body.update(change)
    return body


SERVICE_CASES = [
    C("GET", "/services", "unknown query parameter", query="state=Healthy"),
    C("POST", "/services", "body is a list", body=[service()]),
    C("POST", "/services", "name with capitals", body=service(name="Bad_Svc")),
    C("POST", "/services", "name too long", body=service(name="a" * 40)),
    C("POST", "/services", "name with a newline", body=service(name="svc\n")),
    C("POST", "/services", "no models", body={"name": "bad-svc", "entry_script": "count.py"}),
    C("POST", "/services", "models is a string", body=service(models="m")),
    C("POST", "/services", "a model without a name", body=service(models=[{"version": 1}])),
    C("POST", "/services", "model version beyond int64", body=service(models=[{"name": "m", "version": 10**20}])),
    C("POST", "/services", "unknown model", body=service(models=[{"name": "nobody"}])),
    C("POST", "/services", "unknown model version", body=service(models=[{"name": "m", "version": 99}])),
    C("POST", "/services", "entry script outside its folder", body=service(entry_script="../../etc/passwd")),
    C("POST", "/services", "entry script missing", body=service(entry_script="nope.py")),
    C("POST", "/services", "NUL in the entry script", body=service(entry_script="count\x00.py")),
    C("POST", "/services", "entry script without a folder", body=service(source_directory=None)),
    C("POST", "/services", "no entry script for a model that is not ONNX", body=service(entry_script=None)),
    C("POST", "/services", "port below 1024", body=service(port=80)),
    C("POST", "/services", "port is a string", body=service(port="8080")),
    C("POST", "/services", "auth_enabled is a string", body=service(auth_enabled="yes")),
    C("POST", "/services", "cpu_cores zero", body=service(cpu_cores=0)),
    C("POST", "/services", "max_request_bytes zero", body=service(max_request_bytes=0)),
    C("POST", "/services", "python is relative", body=service(python="python3")),
    C("POST", "/services", "unknown compute target", body=service(compute_target="nowhere")),
    C("POST", "/services", "unknown field", body=service(replicas=3)),
    C("GET", "/services/{name}", "unknown service", params={"name": "nobody"}),
    C("GET", "/services/{name}", "name with a dot-dot", params={"name": ".."}),
    C("DELETE", "/services/{name}", "unknown service", params={"name": "nobody"}),
    C("GET", "/services/{name}/keys", "unknown service", params={"name": "nobody"}),
    C("POST", "/services/{name}/keys", "unknown key", body={"key": "Tertiary"}),
    C("POST", "/services/{name}/keys", "unknown field", body={"key": "Primary", "value": "x"}),
    C("POST", "/services/{name}/keys", "unknown service", params={"name": "nobody"}, body={"key": "Primary"}),
    C("GET", "/services/{name}/logs", "unknown service", params={"name": "nobody"}),
    C("POST", "/services/{name}/score", "unknown service", params={"name": "nobody"}, body=b'{"data": [1]}'),
    C("POST", "/services/{name}/score", "a service name that is not one", params={"name": "Bad_Svc"},
      body=b"x"),
]
CASES = (RUN_CASES + COMPUTE_CASES + MODEL_CASES + ENVIRONMENT_CASES + OTHER_CASES + SWEEP_CASES
         + SERVICE_CASES + DATA_CASES)

# Not endpoints of openapi.yaml: unknown routes and methods answer JSON 404 / 405 too.
UNROUTED = [
    ("GET", "/nope", 404), ("POST", "/runs/x/y/z", 404), ("DELETE", "/runs", 405),
    ("PUT", "/runs/{run}", 405), ("POST", "/experiments", 405), ("GET", "/runs/a%00b", 404),
    ("PATCH", "", 405), ("DELETE", "/models/m/1/files/result.txt", 405), ("POST", "/runs/", 404),
    ("HEAD", "/computes", 405), ("GET", "/runs/", 302),  # a trailing slash: redirected, as Jupyter does
]


def test_every_endpoint_has_bad_cases():
    covered = {(c.method, c.template) for c in CASES}
    missing = [f"{m} {t}" for t, m in CONTRACT.operations() if (m, t) not in covered]
    assert not missing, f"endpoints in openapi.yaml without malformed-request cases: {missing}"
    assert len(CASES) >= 60


@pytest.fixture
def fetch(http_server_client, jp_base_url, jp_auth_header):
    """A raw request under /train/api: status, headers and body, whatever they are."""

    async def call(method, path, query="", body=None, headers=None, auth=True, timeout=20):
        url = f"{jp_base_url.rstrip('/')}/train/api{path}" + (f"?{query}" if query else "")
        hdrs = {**(jp_auth_header if auth else {}), **(headers or {})}
        try:
            return await http_server_client.fetch(url, method=method, headers=hdrs, raise_error=False,
                                                  body=body.encode() if isinstance(body, str) else body,
                                                  allow_nonstandard_methods=True, follow_redirects=False,
                                                  request_timeout=timeout)
        except HTTPTimeoutError:  # e.g. a WebSocket accepted (101) where it should be refused
            return HTTPResponse(HTTPRequest(url, method), 599, headers=HTTPHeaders(), buffer=BytesIO())

    return call


def lost_answer(resp) -> int:
    """1 for what the fault table counts as lost: a 5xx, or an error that is not JSON."""
    return int(resp.code >= 500 or (resp.code >= 400 and answer_problem(resp) is not None))


def answer_problem(resp) -> str | None:
    """Why ``resp`` is not a 4xx JSON error that says what to do, or None."""
    if not 400 <= resp.code < 500:
        return f"answered {resp.code}"
    if not resp.headers.get("Content-Type", "").startswith("application/json"):
        return f"{resp.code} with Content-Type {resp.headers.get('Content-Type')!r}"
    try:
        body = json.loads(resp.body)
    except ValueError:
        return f"{resp.code} with a body that is not JSON: {resp.body[:80]!r}"
    if not (isinstance(body, dict) and isinstance(body.get("error_code"), str)
            and isinstance(body.get("message"), str) and body["message"]):
        return f"{resp.code} without error_code and message: {body!r}"
    return None


async def written_state(api, workspace_dir) -> dict:
    """What a bad request must never change: runs, computes, models, environments, run dirs."""
    return {"runs": (await api.call("GET", "runs"))["runs"],
            "computes": sorted(c["name"] for c in (await api.call("GET", "computes"))["computes"]),
            "models": (await api.call("GET", "models"))["models"],
            "environments": (await api.call("GET", "environments"))["environments"],
            "datastores": (await api.call("GET", "datastores"))["datastores"],
            "datasets": (await api.call("GET", "datasets"))["datasets"],
            "datastore_files": sorted(str(p.relative_to(workspace_dir / "datastores"))
                                      for p in (workspace_dir / "datastores").rglob("*")),
            "run_dirs": sorted(os.listdir(workspace_dir / "runs")),
            "model_dirs": sorted(str(p.relative_to(workspace_dir / "models"))
                                 for p in (workspace_dir / "models").rglob("*"))}


async def test_malformed_requests_are_clear_4xx_and_change_nothing(api, fetch, fault, scripts_dir,
                                                                   workspace_dir):
    run = await api.wait((await api.submit("count.py", ["--n", 2]))["id"])
    await api.call("POST", "models", {"name": "m", "run_id": run["id"], "path": "outputs/result.txt",
                                      "properties": {"p": "set"}}, expect=201)
    await api.call("POST", "environments", {"name": "env-ok", "pip_packages": ["toolz"]}, expect=201)
    samples = {"run_id": run["id"], "name": "m", "version": "1", "path": "result.txt"}
    (workspace_dir / "datastores" / "workspaceblobstore" / "d").mkdir(parents=True, exist_ok=True)
    (workspace_dir / "datastores" / "workspaceblobstore" / "d" / "result.txt").write_text("a dataset file")
    await api.call("POST", "datasets", {"name": "d", "paths": [{"path": "d/**"}]}, expect=201)
    data = {"name": "workspaceblobstore"}
    per_template = {"/computes/{name}": {"name": "local"}, "/environments/{name}": {"name": "Curated-PyTorch"},
                    "/datastores/{name}": data, "/datastores/{name}/upload": data,
                    "/datastores/{name}/files": data, "/datastores/{name}/files/{path}": data,
                    "/datasets/{name}": {"name": "d"}, "/datasets/{name}/{version}": {"name": "d"},
                    "/datasets/{name}/{version}/files/{path}": {"name": "d"},
                    "/runs/{run_id}/logs/{name}": {"name": "rank_0.txt"},
                    "/runs/{run_id}/files/{name}": {"name": "outputs/result.txt"}}
    before = await written_state(api, workspace_dir)
    problems = []
    for case in CASES:
        path = case.path({**samples, **per_template.get(case.template, {})})
        body = case.payload()
        if isinstance(body, str):
            body = body.replace("{scripts}", str(scripts_dir)).replace("{run}", run["id"])
            body = body.replace("{fresh}", f"bad{len(problems)}-{CASES.index(case)}")
        resp = await fetch(case.method, path, case.query, body, UPGRADE if case.websocket else None,
                           timeout=5 if case.websocket else 20)
        problem = answer_problem(resp)
        if os.environ.get("SHOW_ANSWERS"):
            print("ANSWER", case.method, case.template, case.what, "->", resp.code, resp.body[:400].decode(errors="replace"))
        fault.record(f"malformed requests: {case.method} {case.template}", survived=problem is None,
                     lost=lost_answer(resp), unit="500s")
        if problem:
            problems.append(f"{case.method} {path}?{case.query} ({case.what}): {problem}")
    after = await written_state(api, workspace_dir)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    fault.record("malformed requests: what was written is unchanged", survived=not changed,
                 lost=len(changed), unit="changes")
    tally = {"5xx": sum("answered 5" in p for p in problems),
             "accepted (2xx/3xx)": sum(any(f"answered {c}" in p for c in "123") for p in problems)}
    tally["4xx that is not a JSON error"] = len(problems) - sum(tally.values())
    assert not problems, (f"{len(problems)} of {len(CASES)} malformed requests {tally}:\n"
                          + "\n".join(problems))
    assert not changed, f"malformed requests changed what was already written: {changed}"


async def test_unknown_routes_and_methods_answer_json(api, fetch, fault):
    run = await api.submit("count.py", ["--n", 1])
    problems = []
    for method, path, status in UNROUTED:
        resp = await fetch(method, path.replace("{run}", run["id"]),
                           body="{}" if method not in ("GET", "HEAD") else None)
        problem = answer_problem(resp) if method != "HEAD" and status != 302 else None
        if status == 302 and resp.code == 302 and not resp.headers["Location"].endswith(path.rstrip("/")):
            problem = f"redirected to {resp.headers['Location']}"
        elif resp.code != status:
            problem = f"answered {resp.code}, not {status}"
        elif problem:
            pass
        elif status == 404 and "openapi.yaml" not in json.loads(resp.body)["message"]:
            problem = "the message does not point to openapi.yaml"
        elif status == 405 and not resp.headers.get("Allow"):
            problem = "no Allow header"
        fault.record("malformed requests: unknown route or method", survived=problem is None,
                     lost=lost_answer(resp) if method != "HEAD" else int(resp.code >= 500), unit="500s")
        if problem:
            problems.append(f"{method} {path}: {problem}")
    await api.wait(run["id"])
    assert not problems, "\n".join(problems)


async def test_offsets_past_the_end_read_nothing(api, fetch, jp_ws_fetch, fault):
    """An offset within int64 but past what the file system can seek (ext4: 16 TiB) is past the
    end of the log like any other: nothing to read, no 500, and the stream still ends."""
    run = await api.wait((await api.submit("count.py", ["--n", 1]))["id"])
    far = 2**62
    resp = await fetch("GET", f"/runs/{run['id']}/logs/rank_0.txt", query=f"offset={far}")
    ok = resp.code == 200 and json.loads(resp.body)["text"] == ""
    fault.record("malformed requests: log offset past the end", survived=ok, lost=lost_answer(resp), unit="500s")
    assert ok, (resp.code, resp.body[:300])
    ws = await jp_ws_fetch("train", "api", "runs", run["id"], "stream",
                           params={"logs": f"rank_0.txt:{far},supervisor.txt:{10**18 - 1}"})
    types = []
    while not types or types[-1] != "end":
        msg = await asyncio.wait_for(ws.read_message(), 30)
        assert msg is not None, f"the stream closed without 'end' after {types}"
        types.append(json.loads(msg)["type"])
    ws.close()
    ended = "end" in types
    fault.record("malformed requests: log offset past the end", survived=ended, lost=int(not ended),
                 unit="500s")


def test_the_manager_refuses_an_unknown_compute_kind_itself(tmp_path):
    """The core keeps its own rules (RunManager.create_compute), whoever calls it: an unknown kind
    is no cluster, and 10**20 nodes (whose slots a cluster lists: the server ran out of memory)
    are refused."""
    from jupyter_ext.errors import InvalidRequest
    from jupyter_ext.runs import RunManager

    manager = RunManager(str(tmp_path / "ws"))
    try:
        with pytest.raises(InvalidRequest, match="Unknown compute kind 'quantum': use 'cluster'"):
            manager.computes.create({"name": "c1", "kind": "quantum"})
        with pytest.raises(InvalidRequest, match="max_nodes must be a whole number from 1 to 10000"):
            manager.computes.create({"name": "c2", "max_nodes": 10**20})  # its slots are listed
        assert sorted(manager.targets) == ["local"] and manager.store.list_computes() == []
    finally:
        manager.store.close()


async def test_jupyterlab_cache_buster_is_not_refused(fetch):
    """JupyterLab's ServerConnection appends ?<milliseconds> to every GET; the panel's reads
    must pass validation, while a real unknown parameter is still refused."""
    for path in ("/computes", "/runs", "/models"):
        resp = await fetch("GET", path, query="1796123456789")
        assert resp.code == 200, (path, resp.body[:300])
    resp = await fetch("GET", "/computes", query="1796x")
    assert resp.code == 400 and json.loads(resp.body)["error_code"] == "invalid_request"
