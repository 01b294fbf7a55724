"""Checks values against the constraints of AWS's API models (botocore's service-2.json).

Reads from standard input a JSON list of values to check:

    [{"where": "...", "service": "iam", "operation": "CreateRole", "member": "RoleName",
      "value": "..."}, ...]

`member` is a path through the operation's input shape: `Name`, `Tags[].Key` (a list's
member), `Environment.Variables{}` (a map's keys), `Environment.Variables{value}` (its values).

Writes to standard output one JSON object:

    {"violations": [{"where", "service", "operation", "member", "value", "problem"}, ...],
     "constraints": {"service:Operation:member": {"min", "max", "pattern", "enum", "type",
                                                   "documented_max"}, ...}}

The constraints are the model's own: `min`/`max` (a string's length in characters, a number's
range, a list's item count), `pattern` (matched as AWS does, against the whole value) and
`enum`. Some services (EC2, ECS, SNS, Lambda's function names) state their limits only in the
member's documentation, which is part of the same model; `documented_max` is the length that
documentation states ("Up to 255 characters", "limited to 64 characters"), read from the text.
"""

import json
import re
import sys

import botocore.session
import regex

# A length the documentation states. Kept narrow, so a count of something else ("up to 10
# tags") is never read as a length.
DOCUMENTED_MAX = [
    re.compile(r"[Uu]p to (\d+) (?:characters|letters)"),
    re.compile(r"[Ll]imited to (\d+) characters"),
    re.compile(r"must be between \d+ and (\d+) characters"),
    re.compile(r"[Mm]aximum length (?:of|is) (\d+) characters"),
    re.compile(r"can have a maximum of (\d+) characters"),
    re.compile(r"maximum of (\d+) Unicode characters"),
    re.compile(r"[Mm]aximum length for [^.]*? is (\d+) characters"),
]

SESSION = botocore.session.get_session()
MODELS = {}


def model(service):
    if service not in MODELS:
        MODELS[service] = SESSION.get_service_model(service)
    return MODELS[service]


def leaf(service, operation, member):
    shape = model(service).operation_model(operation).input_shape
    for part in member.split("."):
        found = re.fullmatch(r"(\w+)(\[\])?(\{(value)?\})?", part)
        if not found:
            raise ValueError(f"bad member path {member}")
        name, is_list, is_map, is_value = found.groups()
        if name not in shape.members:
            raise KeyError(f"{service}:{operation} has no member {member} ({name})")
        shape = shape.members[name]
        if is_list:
            shape = shape.member
        if is_map:
            shape = shape.value if is_value else shape.key
    return shape


def constraints(shape):
    meta = shape.metadata
    documentation = re.sub(r"<[^>]+>", "", shape.documentation or "")
    # The smallest length the text states (SSM: "2048 ... includes 1037 reserved ... The
    # maximum length for a parameter name that you specify is 1011 characters").
    stated = [int(n) for pattern in DOCUMENTED_MAX for n in pattern.findall(documentation)]
    documented = min(stated) if stated else None
    return {
        "type": shape.type_name,
        "min": meta.get("min"),
        "max": meta.get("max"),
        "pattern": meta.get("pattern"),
        "enum": shape.enum if hasattr(shape, "enum") and shape.enum else None,
        "documented_max": documented,
    }


def java_pattern(pattern):
    """A model pattern (a Java regular expression over UTF-16) for `regex`: a surrogate pair
    written as two escapes (`\\uD800\\uDC00`) becomes the code point it encodes."""

    def code_point(found):
        high, low = int(found.group(1), 16), int(found.group(2), 16)
        return "\\U%08X" % (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))

    return re.sub(r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", code_point, pattern, flags=re.I)


def problems(value, c):
    out = []
    if c["type"] == "string":
        if not isinstance(value, str):
            return [f"expected a string, got {value!r}"]
        n = len(value)
        if c["min"] is not None and n < c["min"]:
            out.append(f"{n} characters, the model's minimum is {c['min']}")
        if c["max"] is not None and n > c["max"]:
            out.append(f"{n} characters, the model's maximum is {c['max']}")
        if c["documented_max"] is not None and n > c["documented_max"]:
            out.append(f"{n} characters, the documented maximum is {c['documented_max']}")
        if c["pattern"] is not None and not regex.fullmatch(java_pattern(c["pattern"]), value, regex.DOTALL):
            out.append(f"does not match the model's pattern {c['pattern']}")
        if c["enum"] and value not in c["enum"]:
            out.append(f"not one of {c['enum']}")
    elif c["type"] in ("integer", "long", "double", "float"):
        if c["min"] is not None and value < c["min"]:
            out.append(f"{value} is below the model's minimum {c['min']}")
        if c["max"] is not None and value > c["max"]:
            out.append(f"{value} is above the model's maximum {c['max']}")
    return out


def main():
    batch = json.load(sys.stdin)
    violations = []
    known = {}
    for item in batch:
        key = f"{item['service']}:{item['operation']}:{item['member']}"
        if key not in known:
            known[key] = constraints(leaf(item["service"], item["operation"], item["member"]))
        for problem in problems(item["value"], known[key]):
            violations.append({**item, "problem": problem})
    json.dump({"violations": violations, "constraints": known}, sys.stdout)


if __name__ == "__main__":
    main()
