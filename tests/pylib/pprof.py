# SPDX-License-Identifier: MIT
"""Reading lua-perf's pprof output with an independent decoder: Debian's python3-protobuf and a
schema equal to github.com/google/pprof's proto/profile.proto (package perftools.profiles),
declared here field by field through the descriptor API (no protoc, no generated code).

load(path) -> (Profile message, Index); Index gives functions and locations by id, sample
stacks leaf first as Function messages, label values, and flat/cumulative counts by function.
"""
import collections
import gzip
import os
import re
import subprocess
import sys

try:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
except ImportError:
    # python3-protobuf installs into Debian's dist-packages, which another Python 3 on the
    # PATH (e.g. a pyenv one) does not search.
    sys.path.append("/usr/lib/python3/dist-packages")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
# profile.proto: message -> (field name, number, type, label, message type)
SCHEMA = {
    "Profile": [
        ("sample_type", 1, F.TYPE_MESSAGE, REP, "ValueType"),
        ("sample", 2, F.TYPE_MESSAGE, REP, "Sample"),
        ("mapping", 3, F.TYPE_MESSAGE, REP, "Mapping"),
        ("location", 4, F.TYPE_MESSAGE, REP, "Location"),
        ("function", 5, F.TYPE_MESSAGE, REP, "Function"),
        ("string_table", 6, F.TYPE_STRING, REP, None),
        ("drop_frames", 7, F.TYPE_INT64, OPT, None),
        ("keep_frames", 8, F.TYPE_INT64, OPT, None),
        ("time_nanos", 9, F.TYPE_INT64, OPT, None),
        ("duration_nanos", 10, F.TYPE_INT64, OPT, None),
        ("period_type", 11, F.TYPE_MESSAGE, OPT, "ValueType"),
        ("period", 12, F.TYPE_INT64, OPT, None),
        ("comment", 13, F.TYPE_INT64, REP, None),
        ("default_sample_type", 14, F.TYPE_INT64, OPT, None),
    ],
    "ValueType": [("type", 1, F.TYPE_INT64, OPT, None), ("unit", 2, F.TYPE_INT64, OPT, None)],
    "Sample": [
        ("location_id", 1, F.TYPE_UINT64, REP, None),
        ("value", 2, F.TYPE_INT64, REP, None),
        ("label", 3, F.TYPE_MESSAGE, REP, "Label"),
    ],
    "Label": [
        ("key", 1, F.TYPE_INT64, OPT, None),
        ("str", 2, F.TYPE_INT64, OPT, None),
        ("num", 3, F.TYPE_INT64, OPT, None),
        ("num_unit", 4, F.TYPE_INT64, OPT, None),
    ],
    "Mapping": [
        ("id", 1, F.TYPE_UINT64, OPT, None),
        ("memory_start", 2, F.TYPE_UINT64, OPT, None),
        ("memory_limit", 3, F.TYPE_UINT64, OPT, None),
        ("file_offset", 4, F.TYPE_UINT64, OPT, None),
        ("filename", 5, F.TYPE_INT64, OPT, None),
        ("build_id", 6, F.TYPE_INT64, OPT, None),
        ("has_functions", 7, F.TYPE_BOOL, OPT, None),
        ("has_filenames", 8, F.TYPE_BOOL, OPT, None),
        ("has_line_numbers", 9, F.TYPE_BOOL, OPT, None),
        ("has_inline_frames", 10, F.TYPE_BOOL, OPT, None),
    ],
    "Location": [
        ("id", 1, F.TYPE_UINT64, OPT, None),
        ("mapping_id", 2, F.TYPE_UINT64, OPT, None),
        ("address", 3, F.TYPE_UINT64, OPT, None),
        ("line", 4, F.TYPE_MESSAGE, REP, "Line"),
        ("is_folded", 5, F.TYPE_BOOL, OPT, None),
    ],
    "Line": [("function_id", 1, F.TYPE_UINT64, OPT, None), ("line", 2, F.TYPE_INT64, OPT, None)],
    "Function": [
        ("id", 1, F.TYPE_UINT64, OPT, None),
        ("name", 2, F.TYPE_INT64, OPT, None),
        ("system_name", 3, F.TYPE_INT64, OPT, None),
        ("filename", 4, F.TYPE_INT64, OPT, None),
        ("start_line", 5, F.TYPE_INT64, OPT, None),
    ],
}


def _profile_class():
    fdp = descriptor_pb2.FileDescriptorProto(name="lua_perf_test_profile.proto",
                                             package="perftools.profiles", syntax="proto3")
    for name, fields in SCHEMA.items():
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = ".perftools.profiles." + type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("perftools.profiles.Profile")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


Profile = _profile_class()


class Index:
    """The profile's references resolved, each checked to exist (profile.proto's rules)."""

    def __init__(self, p):
        self.p = p
        self.strings = list(p.string_table)
        if not self.strings or self.strings[0] != "":
            raise ValueError("string_table[0] is not the empty string")
        self.functions = self._by_id(p.function, "function")
        self.locations = self._by_id(p.location, "location")
        self.mappings = self._by_id(p.mapping, "mapping")
        for f in p.function:
            for i in (f.name, f.system_name, f.filename):
                self.s(i)
        for m in p.mapping:
            self.s(m.filename)
        for loc in p.location:
            if loc.mapping_id and loc.mapping_id not in self.mappings:
                raise ValueError(f"location {loc.id}: no mapping {loc.mapping_id}")
            for line in loc.line:
                if line.function_id not in self.functions:
                    raise ValueError(f"location {loc.id}: no function {line.function_id}")
        for s in p.sample:
            if len(s.value) != len(p.sample_type):
                raise ValueError("a sample's values do not match sample_type")
            for lid in s.location_id:
                if lid not in self.locations:
                    raise ValueError(f"a sample names no location {lid}")

    @staticmethod
    def _by_id(items, what):
        out = {}
        for item in items:
            if item.id == 0 or item.id in out:
                raise ValueError(f"{what} id {item.id} zero or repeated")
            out[item.id] = item
        return out

    def s(self, i):
        if not 0 <= i < len(self.strings):
            raise ValueError(f"string index {i} out of range")
        return self.strings[i]

    def labels(self, sample):
        """{key: str or num} of a sample."""
        return {self.s(l.key): (self.s(l.str) if l.str else l.num) for l in sample.label}

    def function_key(self, f):
        return (self.s(f.name), self.s(f.filename))

    def stack(self, sample):
        """(function key, line) of each frame, leaf first (one Line per Location here)."""
        out = []
        for lid in sample.location_id:
            for line in self.locations[lid].line:
                out.append((self.function_key(self.functions[line.function_id]), line.line))
        return out

    def flat_cum(self, value=0):
        flat, cum = collections.Counter(), collections.Counter()
        for s in self.p.sample:
            keys = [k for k, _ in self.stack(s)]
            if keys:
                flat[keys[0]] += s.value[value]
            for k in set(keys):
                cum[k] += s.value[value]
        return flat, cum


def go_top(path, tmp):
    """`go tool pprof -top` of the samples/count values, every node: (total, {name: [flat, cum,
    rows]}): rows counts the rows of that name (pprof keeps functions of one name in different
    files apart). Debian's golang-go; -symbolize=none: the names are lua-perf's."""
    argv = ["go", "tool", "pprof", "-symbolize=none", "-top", "-sample_index=samples",
            "-nodecount=1000000", "-nodefraction=0", "-edgefraction=0", path]
    env = dict(os.environ, HOME=tmp, GOCACHE=os.path.join(tmp, "gocache"))
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = res.stdout.decode(errors="replace")
    if res.returncode != 0:
        raise ValueError(f"go tool pprof failed ({res.returncode}): "
                         f"{res.stderr.decode(errors='replace')[-1000:]}")
    m = re.search(r"Total samples = (\d+)", out)
    if not m:
        raise ValueError(f"go tool pprof -top: no total in {out[:500]!r}")
    rows = {}
    for flat, cum, name in re.findall(r"^ +(\d+) +[\d.]+% +[\d.]+% +(\d+) +[\d.]+%  (.*)$", out,
                                      re.M):
        row = rows.setdefault(name, [0, 0, 0])
        row[0] += int(flat)
        row[1] = int(cum)
        row[2] += 1
    return int(m.group(1)), rows


def load(path):
    with open(path, "rb") as f:
        data = gzip.decompress(f.read())
    p = Profile()
    p.ParseFromString(data)
    return p, Index(p)


def expected_function_key(frame):
    """The pprof (name, filename) lua-perf gives a folded frame (docs/output-format.md), computed
    here independently of the C code, with regular expressions."""
    m = re.fullmatch(r"L:([^@]*)@builtin", frame)
    if m:
        return (m.group(1), "builtin")
    m = re.fullmatch(r"L:([^@]*)@(.*):(\d+)(_\[j\])?", frame, re.S)
    if m:
        return (m.group(1) + (m.group(4) or ""), m.group(2))
    m = re.fullmatch(r"(.*)_\[k\]", frame, re.S)
    if m:
        return (m.group(1), "")
    return (frame, "")


def folded_flat_cum(stacks):
    """Flat and cumulative samples by expected function key from folded stacks
    ([(tuple of frames root first, count)], folded.parse_fold's)."""
    flat, cum = collections.Counter(), collections.Counter()
    for frames, n in stacks:
        keys = [expected_function_key(f) for f in frames]
        if keys:
            flat[keys[-1]] += n
        for k in set(keys):
            cum[k] += n
    return flat, cum
