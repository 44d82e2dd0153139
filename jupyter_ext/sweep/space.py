"""A sweep's search space: Azure ML's parameter expressions as they come over the wire, checked,
each one as the Optuna distribution that samples it and the map from that sample to the value
the script gets.

The wire form is Azure ML's own (``azureml.train.hyperdrive.parameter_expressions``): a list of
the function's name and its arguments, ``["uniform", [0.0005, 0.005]]``,
``["choice", [[16, 32, 64]]]``. Semantics, as Azure ML documents them:

  choice(*options)          one of the options
  randint(upper)            an integer in [0, upper)
  uniform(low, high)        uniform in [low, high]
  quniform(low, high, q)    round(uniform(low, high) / q) * q
  loguniform(low, high)     exp(uniform(low, high)): low and high are exponents (natural log)
  qloguniform(low, high, q) round(exp(uniform(low, high)) / q) * q
  normal(mu, sigma)         a normal value, mean mu, standard deviation sigma
  qnormal(mu, sigma, q)     round(normal(mu, sigma) / q) * q
  lognormal(mu, sigma)      exp(normal(mu, sigma))
  qlognormal(mu, sigma, q)  round(exp(normal(mu, sigma)) / q) * q

A quantized value is an int where q is an int. Optuna has no normal distribution: a normal
parameter is sampled as its quantile u in (0, 1) and mapped through the inverse normal CDF, so
TPE models it in quantile space. Optuna is imported only when a sampler is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from ..errors import InvalidRequest

ARITY = {"choice": 1, "randint": 1, "uniform": 2, "quniform": 3, "loguniform": 2, "qloguniform": 3,
         "normal": 2, "qnormal": 3, "lognormal": 2, "qlognormal": 3}
MAX_PARAMS = 100
MAX_CHOICES = 10_000
QUANTILE_EPS = 1e-6  # a normal quantile is sampled in [eps, 1 - eps]: never an infinite value


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    args: tuple

    def distribution(self):
        """The Optuna distribution that this parameter's raw sample comes from."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
        k, a = self.kind, self.args
        if k == "choice":
            return CategoricalDistribution(list(a[0]))
        if k == "randint":
            return IntDistribution(0, a[0] - 1)
        if k in ("uniform", "quniform"):
            return FloatDistribution(a[0], a[1])
        if k in ("loguniform", "qloguniform"):
            return FloatDistribution(math.exp(a[0]), math.exp(a[1]), log=True)
        return FloatDistribution(QUANTILE_EPS, 1 - QUANTILE_EPS)  # the normal family: a quantile

    def value(self, raw):
        """The hyperparameter value for the raw sample ``raw``."""
        k, a = self.kind, self.args
        if k in ("choice", "randint", "uniform", "loguniform"):
            return raw
        if k in ("normal", "qnormal", "lognormal", "qlognormal"):
            raw = NormalDist(a[0], a[1]).inv_cdf(raw)
            if k in ("lognormal", "qlognormal"):
                raw = math.exp(raw)
        if k.startswith("q"):
            q = a[2]
            quantized = round(raw / q) * q
            return int(quantized) if isinstance(q, int) else float(quantized)
        return raw

    @property
    def choices(self) -> list:
        if self.kind == "choice":
            return list(self.args[0])
        if self.kind == "randint":
            return list(range(self.args[0]))
        raise InvalidRequest(f"{self.name}: {self.kind} has no finite set of values; grid sampling "
                             "takes choice(...) parameters only.")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse_param(name, expr) -> Param:
    """One ``name: expression`` pair of the space, checked."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise InvalidRequest(f"Hyperparameter name {name!r} must be a non-empty string, e.g. "
                             "'--learning_rate' (it is passed to the script as that argument).")
    if (not isinstance(expr, (list, tuple)) or len(expr) != 2 or expr[0] not in ARITY
            or not isinstance(expr[1], (list, tuple))):
        raise InvalidRequest(f"{name}: {expr!r} is not a parameter expression. Use choice(...), "
                             "randint(...), uniform(...), quniform(...), loguniform(...), "
                             "qloguniform(...), normal(...), qnormal(...), lognormal(...) or "
                             "qlognormal(...) from kernel_lib.hyperdrive.")
    kind, args = expr[0], tuple(expr[1])
    if len(args) != ARITY[kind]:
        raise InvalidRequest(f"{name}: {kind} takes {ARITY[kind]} argument(s), got {len(args)}.")
    if kind == "choice":
        options = args[0]
        if not isinstance(options, (list, tuple)) or not options:
            raise InvalidRequest(f"{name}: choice needs at least one option, e.g. choice(16, 32, 64).")
        if len(options) > MAX_CHOICES:
            raise InvalidRequest(f"{name}: choice has {len(options)} options; at most {MAX_CHOICES}.")
        for o in options:
            if not (o is None or isinstance(o, (str, bool)) or _number(o)):
                raise InvalidRequest(f"{name}: choice option {o!r} must be a number, a string, "
                                     "True/False or None.")
        if len({repr(o) for o in options}) != len(options):
            raise InvalidRequest(f"{name}: choice options repeat; give each option once.")
        return Param(name, kind, (tuple(options),))
    if not all(_number(x) for x in args):
        raise InvalidRequest(f"{name}: the arguments of {kind} must be finite numbers, got {list(args)}.")
    if kind == "randint":
        if not isinstance(args[0], int) or args[0] < 1:
            raise InvalidRequest(f"{name}: randint(upper) needs a whole number upper >= 1.")
    elif kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        if not args[0] < args[1]:
            raise InvalidRequest(f"{name}: {kind}(low, high) needs low < high, got {args[0]} and {args[1]}.")
        if kind in ("loguniform", "qloguniform") and max(abs(args[0]), abs(args[1])) > 700:
            raise InvalidRequest(f"{name}: {kind} takes exponents: exp({args[1]}) is out of range. "
                                 "loguniform(-6, -1) samples between e^-6 and e^-1.")
    elif args[1] <= 0:
        raise InvalidRequest(f"{name}: {kind}(mu, sigma, ...) needs sigma > 0.")
    if kind.startswith("q") and args[2] <= 0:
        raise InvalidRequest(f"{name}: {kind} needs q > 0.")
    return Param(name, kind, args)


def parse_space(space) -> list[Param]:
    if not isinstance(space, dict) or not space:
        raise InvalidRequest("The parameter space must be an object of hyperparameter name -> "
                             "expression, e.g. {'--lr': uniform(0.0005, 0.005)}.")
    if len(space) > MAX_PARAMS:
        raise InvalidRequest(f"The parameter space has {len(space)} hyperparameters; at most {MAX_PARAMS}.")
    return [parse_param(name, expr) for name, expr in space.items()]


def as_arguments(base: list, params: dict) -> list[str]:
    """The script's arguments with the sampled hyperparameters: a name the base arguments hold
    already has its value replaced, any other is appended as ``name value``. A name without a
    leading '-' is passed as ``--name``."""
    args = [str(a) for a in base]
    for name, value in params.items():
        flag = name if name.startswith("-") else f"--{name}"
        text = _text(value)
        if flag in args and args.index(flag) + 1 < len(args):
            args[args.index(flag) + 1] = text
        else:
            args += [flag, text]
    return args


def _text(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
