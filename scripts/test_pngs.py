"""Writes COUNT small grey PNG files (32x32 gradients, each image its own) into FOLDER, with
Python's standard library only: images for the scripts that check a ranking or a cluster run.

    python3 scripts/test_pngs.py FOLDER COUNT
"""
import os
import struct
import sys
import zlib


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def main(folder: str, count: int) -> None:
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        rows = b"".join(
            b"\0" + bytes((x * (i % 7 + 3) + y * (i % 5 + 1)) % 256 for x in range(32))
            for y in range(32)
        )
        header = struct.pack(">IIBBBBB", 32, 32, 8, 0, 0, 0, 0)
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
               + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
        with open(os.path.join(folder, f"image-{i:03d}.png"), "wb") as f:
            f.write(png)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
