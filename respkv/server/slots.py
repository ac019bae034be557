"""Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its {hash tag}, modulo 16384."""

from __future__ import annotations

from binascii import crc_hqx

SLOTS = 16384


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the one Redis Cluster uses."""
    return crc_hqx(data, 0)


def key_slot(key: bytes) -> int:
    """The slot Redis Cluster assigns to ``key`` (hash tags as in Redis: the first {...})."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end != -1 and end != start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) % SLOTS
