"""What the comparison scripts print about the machine they ran on."""

import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, for the header of a table.

    With its family and model numbers: cloud machines often name only the
    line ("AMD EPYC"), and figures from two generations must not read alike.
    """
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break  # the first processor's block is enough
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name
