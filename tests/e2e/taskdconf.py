"""taskd configuration files for tests and benchmarks: dotted overrides and libconfig text.

Standard library only, no side effects on import: used by tests/e2e/harness.py
and tests/bench/benchlib.py.
"""

import json


def merge(cfg, overrides):
    """Apply {"group.key": value} overrides to a nested dict (None removes a key); → cfg."""
    for key, value in (overrides or {}).items():
        parts = key.split(".")
        node = cfg
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return cfg


def render_value(v):
    """One scalar in libconfig syntax (floats always with a point: libconfig types them)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if ("." in r or "e" in r) else r + ".0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # libconfig: same escapes for our values
    if isinstance(v, list) and all(isinstance(x, dict) for x in v) and v:
        return "( %s )" % ", ".join(render_group(x) for x in v)  # a list of groups (handlers)
    if isinstance(v, list):
        return "[ %s ]" % ", ".join(render_value(x) for x in v)  # an array of scalars
    raise TypeError("unsupported config value %r" % (v,))


def render_group(d):
    """{"k": v, ...} → "{ k = v; ... }"."""
    return "{ %s }" % " ".join("%s = %s;" % (k, render_value(v)) for k, v in d.items())


def render(cfg, source):
    """A dict of (nested dicts of) scalars or lists of scalars → libconfig text, headed
    "# written by SOURCE"."""
    lines = ["# written by " + source]
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines.append("%s = %s;" % (k, render_group(v)))
        else:
            lines.append("%s = %s;" % (k, render_value(v)))
    return "\n".join(lines) + "\n"
