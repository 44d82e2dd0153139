"""Fails with a traceback after some output."""
print("about to fail", flush=True)


def configure(lr):
    raise ValueError(f"learning rate {lr} is out of range")


configure(-1)
