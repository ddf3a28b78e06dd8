#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/corpus/ from the recorded vectors (../shared/vectors).

Usage: python3 fuzz/make_seeds.py <vectors dir>   (e.g. ../shared/vectors)

The seeds are a few real frames, the recorded ZIP packages, merged files and cluster_control.json
documents, plus connection programs in the format of simulator/src/fuzz_bodies/connection.rs.
Each seed is small (a few KiB at most): the corpus is committed so that it is self-contained.
"""
import hashlib
import io
import json
import os
import struct
import sys
import zipfile

KEY = "wazuh395interopkey0123456789abcd"
COMMANDS = [b"hello", b"echo", b"echo-c", b"echo-m", b"new_file", b"file_upd", b"file_end",
            b"new_str", b"str_upd", b"ok", b"err", b"ok-m", b"ok-c", b"dapi", b"sync_i_w_m_p",
            b"foo"]


def write(target, name, data):
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", target)
    os.makedirs(folder, exist_ok=True)
    assert len(data) <= 8192, (target, name, len(data))
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# Connection program operations (see fuzz_bodies::connection::Op).
def raw(data):
    return bytes([0]) + struct.pack(">H", len(data)) + data


def sealed(counter, command, payload, flags=0):
    return (bytes([1]) + struct.pack(">I", counter) + bytes([COMMANDS.index(command), flags])
            + struct.pack(">H", len(payload)) + payload)


def advance(centis):
    return bytes([2]) + struct.pack(">H", centis)


JUMP = bytes([3])
AUTH = bytes([6])


def request(command, payload):
    return bytes([4, COMMANDS.index(command)]) + struct.pack(">H", len(payload)) + payload


def transfer(kind, length):
    return bytes([5, kind]) + struct.pack(">H", length)


def reply(which):
    return bytes([7, which])


def main(vectors):
    v39 = os.path.join(vectors, "v3.9")
    frames = json.load(open(os.path.join(v39, "frames.json")))
    plain = [bytes.fromhex(f["wire_hex"]) for f in frames["plaintext_frames"]]
    fernet = [f for f in frames["fernet_frames"] if f["key"] == KEY]
    quirks = frames["receive_quirks"]

    # frame_decode: byte 0 seeds the cut points.
    for i, wire in enumerate(plain[:6]):
        write("frame_decode", f"plaintext_{i}", bytes([i]) + wire)
    write("frame_decode", "two_frames", b"\x07" + b"".join(
        bytes.fromhex(c) for c in quirks["two frames in one read"]["chunks_hex"]))
    write("frame_decode", "fernet_hello", b"\x03" + bytes.fromhex(fernet[0]["wire_hex"]))

    # connection: byte 0 = flags (1 server, 2 key, 4 hello gate, 8 authenticated).
    write("connection", "server_plain_raw", bytes([0x01]) + b"".join(raw(w) for w in plain[:5]))
    write("connection", "server_key_recorded_frames", bytes([0x07]) + b"".join(
        raw(bytes.fromhex(f["wire_hex"])) for f in fernet[:3]) + reply(0) + JUMP)
    data = b"0123456789"
    digest = hashlib.sha256(data).digest()
    write("connection", "server_key_transfers", bytes([0x0B]) + b"".join([
        sealed(10, b"new_str", b"10"), sealed(11, b"str_upd", data, flags=1),
        sealed(12, b"new_file", b"/queue/cluster/w/f"),
        sealed(13, b"file_upd", b"/queue/cluster/w/f " + data),
        sealed(14, b"file_end", b"/queue/cluster/w/f " + digest),
        sealed(15, b"echo-c", b"keepalive"), sealed(16, b"dapi", b"{}"), reply(0), reply(1),
        sealed(17, b"new_str", b"5000"), advance(50), JUMP, JUMP]))
    write("connection", "client_plain_requests", bytes([0x08]) + b"".join([
        request(b"dapi", b"{}"), sealed(0, b"ok", b"answer", flags=2), transfer(0, 2500),
        sealed(0, b"ok", b"4242", flags=2), sealed(0, b"ok", b"Chunk received", flags=2),
        transfer(1, 1500), JUMP, JUMP, JUMP,
        sealed(99, b"echo-m", b"ping"), advance(6000), JUMP]))
    write("connection", "client_hello_gate", bytes([0x06]) + b"".join([
        request(b"hello", b"worker1 wazuh worker 3.9.5"), sealed(0, b"ok", b"Client worker1 added", flags=2),
        AUTH, sealed(5, b"dapi", b"x"), JUMP, JUMP, JUMP]))

    # package_apply: byte 0 = flow (0 worker applies master package, 1 master applies worker
    # package, 2 master reads worker metadata).
    m2w = open(os.path.join(v39, "integrity_master_to_worker.zip"), "rb").read()
    w2m = open(os.path.join(v39, "integrity_worker_to_master.zip"), "rb").read()
    write("package_apply", "master_to_worker", b"\x00" + m2w)
    write("package_apply", "worker_to_master", b"\x01" + w2m)
    write("package_apply", "worker_metadata", b"\x02" + w2m)

    # merged_parse and metadata_parse: the recorded documents as they are.
    for name in ("agent-info.merged", "agent-groups.merged"):
        write("merged_parse", name, open(os.path.join(v39, name), "rb").read())
    for name, zipped in (("master_to_worker", m2w), ("worker_to_master", w2m)):
        with zipfile.ZipFile(io.BytesIO(zipped)) as z:
            write("metadata_parse", name + ".json", z.read("cluster_control.json"))


if __name__ == "__main__":
    main(sys.argv[1])
