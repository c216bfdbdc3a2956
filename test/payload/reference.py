"""An independent implementation of Moat's payload envelope, version 1, with Python's `cryptography`.

It exists to check the TypeScript one (src/payload/envelope.ts) from outside: the test vectors in vectors.json
come from here, and test/payload/python-interop.test.ts drives it over stdin.

    /usr/bin/python3 reference.py vectors    prints vectors.json
    /usr/bin/python3 reference.py serve      one JSON request per stdin line, one JSON answer per stdout line:
        {"op": "seal", "algorithm", "key", "keyId", "counter", "nonce", "topic", "plaintext"} -> {"envelope"}
        {"op": "open", "key", "topic", "envelope"} -> {"plaintext"} (null when it does not authenticate)
      byte strings in hex, the counter as a decimal string, the topic as text.
"""
import json
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

VERSION = 1
AEADS = {1: AESGCM, 2: ChaCha20Poly1305}
HEADER = struct.Struct(">BBBQ12s")  # version, algorithm, key id, counter, nonce: 23 bytes
TAG = 16


def seal(algorithm, key, key_id, counter, nonce, topic, plaintext):
    header = HEADER.pack(VERSION, algorithm, key_id, counter, nonce)
    # cryptography returns the ciphertext with the tag appended, which is the envelope's order too.
    return header + AEADS[algorithm](key).encrypt(nonce, plaintext, header + topic.encode("utf-8"))


def open_envelope(key, topic, envelope):
    if len(envelope) < HEADER.size + TAG:
        return None
    version, algorithm, _key_id, counter, nonce = HEADER.unpack_from(envelope)
    if version != VERSION or algorithm not in AEADS or counter == 0:
        return None
    header = envelope[: HEADER.size]
    try:
        return AEADS[algorithm](key).decrypt(nonce, envelope[HEADER.size :], header + topic.encode("utf-8"))
    except InvalidTag:
        return None


# Inputs of the published vectors: fixed, so the file is reproducible. Keys and nonces are counting bytes, which
# no one should use as keys; a vector only has to be easy to retype.
VECTOR_INPUTS = [
    ("AES-256-GCM, key id 0, text", 1, bytes(range(32)), 0, 1, bytes.fromhex("0000000a0000000000000001"), "sensors/kitchen/temperature", b"21.5"),
    ("AES-256-GCM, empty plaintext", 1, bytes(range(32)), 0, 2, bytes.fromhex("0000000a0000000000000002"), "sensors/kitchen/temperature", b""),
    ("ChaCha20-Poly1305, key id 0, text", 2, bytes(range(32, 64)), 0, 1, bytes.fromhex("0000000b0000000000000001"), "devices/d1/state", b'{"on":true}'),
    ("ChaCha20-Poly1305, empty plaintext, key id 7", 2, bytes(range(32, 64)), 7, 42, bytes.fromhex("0000000b000000000000002a"), "devices/d1/state", b""),
    ("AES-256-GCM, key id 7, large counter", 1, bytes(range(64, 96)), 7, 18446744073709551615, bytes.fromhex("a1b2c3d4ffffffffffffffff"), "meters/m-17/energy", bytes(range(40))),
    ("ChaCha20-Poly1305, non-ASCII topic", 2, bytes(range(96, 128)), 3, 1700000000000000, bytes.fromhex("0102030405060708090a0b0c"), "capteurs/entrée/température/°C", "22,5 °C".encode("utf-8")),
    ("AES-256-GCM, non-ASCII topic, binary payload", 1, bytes(range(128, 160)), 255, 4294967296, bytes.fromhex("ffffffff0000000100000000"), "センサー/温度", bytes(range(255, 191, -1))),
    ("AES-256-GCM, counter 2^63", 1, bytes(range(160, 192)), 1, 9223372036854775808, bytes.fromhex("000000008000000000000000"), "a", b"x"),
]


def vectors():
    out = []
    for name, algorithm, key, key_id, counter, nonce, topic, plaintext in VECTOR_INPUTS:
        envelope = seal(algorithm, key, key_id, counter, nonce, topic, plaintext)
        assert open_envelope(key, topic, envelope) == plaintext
        out.append({
            "name": name,
            "algorithm": algorithm,
            "key": key.hex(),
            "keyId": key_id,
            "counter": str(counter),
            "nonce": nonce.hex(),
            "topic": topic,
            "topicHex": topic.encode("utf-8").hex(),
            "plaintext": plaintext.hex(),
            "envelope": envelope.hex(),
        })
    return {
        "about": "Moat payload envelope version 1 test vectors, made by test/payload/reference.py with Python's cryptography",
        "vectors": out,
    }


def serve():
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        key = bytes.fromhex(request["key"])
        if request["op"] == "seal":
            envelope = seal(request["algorithm"], key, request["keyId"], int(request["counter"]), bytes.fromhex(request["nonce"]), request["topic"], bytes.fromhex(request["plaintext"]))
            answer = {"envelope": envelope.hex()}
        else:
            plaintext = open_envelope(key, request["topic"], bytes.fromhex(request["envelope"]))
            answer = {"plaintext": None if plaintext is None else plaintext.hex()}
        sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["vectors"]:
        json.dump(vectors(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit("usage: reference.py vectors | serve")
