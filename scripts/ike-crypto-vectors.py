#!/usr/bin/env python3
"""Independent computations of the expected values in rswan's IKE crypto tests.

Run once; the printed values are pasted into the tests named below. Uses only Python's
standard library (hmac, hashlib: OpenSSL-backed) and the `cryptography` package (Debian:
python3-cryptography), never rswan or RustCrypto code.

  src/pluto/crypto/dh.rs            RFC 3526 primes 15/16 from their formula, MODP 3072/4096
                                    known answers, RFC 5903 public values
  src/pluto/crypto/ikev2/keys.rs    IKEv2 key schedule (prf+, SKEYSEED, splits, child
                                    KEYMAT, rekey) for SHA-1/256/384/512 PRFs
  src/pluto/crypto/ikev2/sk.rs      SK payloads: AES-CBC + HMAC-SHA2-256-128, AES-GCM-16,
                                    ChaCha20-Poly1305 (RFC 7634 appendix B checked)
  src/pluto/crypto/ikev2/auth.rs    shared-key AUTH
  src/pluto/crypto/rsa.rs           RSA signatures (PKCS#1 v1.5 SHA-1/256/384/512, PSS): the
                                    key is generated afresh on each run, so a rerun prints a
                                    new key and new signatures (the tests hold one run's).
"""
import hashlib
import hmac
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305


def section(name):
    print(f"\n== {name}")


# ---- RFC 3526 primes ---------------------------------------------------------------------

def pi_fixed(bits):
    """floor(pi * 2^bits), Machin's formula in integers (64 guard bits)."""
    one = 1 << (bits + 64)

    def arctan_inv(x):
        total = term = one // x
        x2, n, sign = x * x, 1, -1
        while term:
            term //= x2
            total += sign * (term // (2 * n + 1))
            sign, n = -sign, n + 1
        return total

    return (4 * (4 * arctan_inv(5) - arctan_inv(239))) >> 64


def modp(bits, shift, add):
    return 2**bits - 2**(bits - 64) - 1 + 2**64 * (pi_fixed(shift) + add)


section("RFC 3526 primes (dh.rs MODP3072_P / MODP4096_P)")
P2048 = modp(2048, 1918, 124476)
P3072 = modp(3072, 2942, 1690314)
P4096 = modp(4096, 3966, 240904)
for p in (P2048, P3072, P4096):
    assert pow(2, p - 1, p) == 1
print("3072", format(P3072, "X"))
print("4096", format(P4096, "X"))

section("MODP 3072/4096 known answers (dh.rs modp3072_4096_round_trip_known_answer)")
x = int.from_bytes(bytes(range(32)), "big")
y = int.from_bytes(bytes(range(100, 156)), "big")
for name, p, n in (("3072", P3072, 384), ("4096", P4096, 512)):
    gx, gy = pow(2, x, p), pow(2, y, p)
    print(name, "g^x tail", gx.to_bytes(n, "big")[-16:].hex(),
          "g^xy tail", pow(gy, x, p).to_bytes(n, "big")[-16:].hex())

section("RFC 5903 public values (dh.rs rfc5903)")
for curve, i, r in (
    (ec.SECP384R1(),
     "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
     "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC"),
    (ec.SECP521R1(),
     "0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A095AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D4A52",
     "0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB151685EB9"),
):
    a = ec.derive_private_key(int(i, 16), curve)
    b = ec.derive_private_key(int(r, 16), curve)
    pub = lambda k: k.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:].hex()
    print(curve.name, "g^i", pub(a))
    print(curve.name, "g^r", pub(b))
    print(curve.name, "g^ir", a.exchange(ec.ECDH(), b.public_key()).hex())

# ---- IKEv2 key schedule -----------------------------------------------------------------

H = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
     "sha512": hashlib.sha512}


def prf(h, k, d):
    return hmac.new(k, d, H[h]).digest()


def prf_plus(h, k, s, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(h, k, t + s + bytes([i]))
        out, i = out + t, i + 1
    return out[:n]


NI = bytes(range(0x10, 0x30))
NR = bytes(range(0x40, 0x60))
GIR = bytes((7 * i + 3) % 256 for i in range(256))
SPII = bytes.fromhex("0102030405060708")
SPIR = bytes.fromhex("1112131415161718")
GIR_NEW = bytes((5 * i + 1) % 256 for i in range(32))
NI2 = bytes(range(0x80, 0x90))
NR2 = bytes(range(0xA0, 0xC0))
SPII2 = bytes.fromhex("2122232425262728")
SPIR2 = bytes.fromhex("3132333435363738")

PRF_LEN = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def split(h, keymat, integ, enc):
    p = PRF_LEN[h]
    names = [("SK_d", p), ("SK_ai", integ), ("SK_ar", integ), ("SK_ei", enc), ("SK_er", enc),
             ("SK_pi", p), ("SK_pr", p)]
    out, at = {}, 0
    for name, n in names:
        out[name] = keymat[at:at + n]
        at += n
    assert at == len(keymat)
    return out


def ike_sa(label, h, integ, enc, seed, ni, nr, spii, spir):
    n = 3 * PRF_LEN[h] + 2 * integ + 2 * enc
    keys = split(h, prf_plus(h, seed, ni + nr + spii + spir, n), integ, enc)
    section(f"IKE SA {label} (keys.rs)")
    print("SKEYSEED", seed.hex())
    for k, v in keys.items():
        print(k, v.hex())
    return keys


def child(label, h, sk_d, enc, integ, gir_new, ni, nr):
    seed = (gir_new or b"") + ni + nr
    km = prf_plus(h, sk_d, seed, 2 * (enc + integ))
    section(f"child {label} (keys.rs)")
    print("i->r enc", km[:enc].hex(), "integ", km[enc:enc + integ].hex())
    print("r->i enc", km[enc + integ:2 * enc + integ].hex(), "integ", km[2 * enc + integ:].hex())


# A: PRF_HMAC_SHA2_256, AES-CBC-128, AUTH_HMAC_SHA2_256_128.
seed_a = prf("sha256", NI + NR, GIR)
A = ike_sa("A sha256/aes128/sha256-128", "sha256", 32, 16, seed_a, NI, NR, SPII, SPIR)
child("A1 aes128gcm16, no PFS", "sha256", A["SK_d"], 20, 0, None, NI, NR)
child("A2 aes256-sha512 with PFS", "sha256", A["SK_d"], 32, 64, GIR_NEW, NI, NR)
# B: A rekeyed (old PRF SHA-256) into PRF_HMAC_SHA2_384 + AES-GCM-16-256.
seed_b = prf("sha256", A["SK_d"], GIR_NEW + NI2 + NR2)
B = ike_sa("B = A rekeyed, sha384/aes256gcm16", "sha384", 0, 36, seed_b, NI2, NR2, SPII2, SPIR2)
# C: PRF_HMAC_SHA2_512 + ChaCha20-Poly1305, child ChaCha20-Poly1305 with PFS.
seed_c = prf("sha512", NI + NR, GIR)
C = ike_sa("C sha512/chacha20poly1305", "sha512", 0, 36, seed_c, NI, NR, SPII, SPIR)
child("C1 chacha20poly1305 with PFS", "sha512", C["SK_d"], 36, 0, GIR_NEW, NI, NR)
# D: PRF_HMAC_SHA1, 3DES, AUTH_HMAC_SHA1_96 (prf+ of 8 blocks).
seed_d = prf("sha1", NI + NR, GIR)
D = ike_sa("D sha1/3des/sha1-96", "sha1", 20, 24, seed_d, NI, NR, SPII, SPIR)

# ---- SK payloads -------------------------------------------------------------------------

section("SK: AES-CBC-128 + HMAC-SHA2-256-128 (sk.rs)")
# An INFORMATIONAL request from the initiator with one empty-ish Notify, keys from case A.
inner = bytes.fromhex("0000000c010000070000000000")[:12]  # one 12-byte payload
iv = bytes(range(0xE0, 0xF0))
pad = (16 - (len(inner) + 1) % 16) % 16
plain = inner + bytes(pad) + bytes([pad])
body_len = 16 + len(plain) + 16
aad = SPII + SPIR + bytes([0x2E, 0x20, 0x25, 0x08]) + (7).to_bytes(4, "big") + \
    (28 + 4 + body_len).to_bytes(4, "big") + bytes([0x29, 0x00]) + (4 + body_len).to_bytes(2, "big")
enc = Cipher(algorithms.AES(A["SK_ei"]), modes.CBC(iv)).encryptor()
ct = enc.update(plain) + enc.finalize()
icv = hmac.new(A["SK_ai"], aad + iv + ct, hashlib.sha256).digest()[:16]
print("inner", inner.hex())
print("aad", aad.hex())
print("iv", iv.hex())
print("ct", ct.hex())
print("icv", icv.hex())

section("SK: AES-GCM-16-256 (sk.rs), keys from case B, IV counter 0")
inner = bytes.fromhex("2900000c0100000700000000") + bytes.fromhex("0000000801000000")
body_len = 8 + len(inner) + 1 + 16
aad = SPII2 + SPIR2 + bytes([0x2E, 0x20, 0x25, 0x20]) + (0).to_bytes(4, "big") + \
    (28 + 4 + body_len).to_bytes(4, "big") + bytes([0x29, 0x00]) + (4 + body_len).to_bytes(2, "big")
sk_er = B["SK_er"]
out = AESGCM(sk_er[:32]).encrypt(sk_er[32:] + bytes(8), inner + b"\x00", aad)
print("inner", inner.hex())
print("aad", aad.hex())
print("ct|tag", out.hex())

section("SK: ChaCha20-Poly1305, RFC 7634 appendix B (checked)")
key = bytes.fromhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
salt, iv = bytes.fromhex("a0a1a2a3"), bytes.fromhex("1011121314151617")
aad = bytes.fromhex("c0c1c2c3c4c5c6c7d0d1d2d3d4d5d6d72e202500000000090000004529000029")
out = ChaCha20Poly1305(key).encrypt(salt + iv, bytes.fromhex("0000000c000040010000000a00"), aad)
assert out.hex() == "610394701f8d017f7c12924889" + "6b71bfe25236efd7cdc67066906315b2", out.hex()
print("ok")

section("SK: AES-GCM-16-256 IKE message from Android's IkeCombinedModeCipherTest (checked)")
key = bytes.fromhex("7C04513660DEC572D896105254EF92608054F8E6EE19E79CE52AB8697B2B5F2C2AA90C29")
aad = bytes.fromhex("77c708b4523e39a471dc683c1d4f21362e202508000000060000004129000025")
out = AESGCM(key[:32]).encrypt(key[32:] + bytes.fromhex("fbd69d9de2dafc5e"),
                               bytes.fromhex("000000080000400f00"), aad)
assert out.hex() == "f4109834e9f3559758c05edf119917521b885f67f0d14ced43", out.hex()
print("ok")

# ---- AUTH ---------------------------------------------------------------------------------

section("shared-key AUTH (auth.rs), case A keys, PRF HMAC-SHA2-256")
message1 = bytes(range(0, 100))
idi_body = bytes([2, 0, 0, 0]) + b"west.example"  # ID_FQDN
octets = message1 + NR + prf("sha256", A["SK_pi"], idi_body)
psk = b"a shared secret, 32 bytes long.."
print("octets tail", octets[-32:].hex())
print("AUTH", prf("sha256", prf("sha256", psk, b"Key Pad for IKEv2"), octets).hex())

# ---- RSA ------------------------------------------------------------------------------------

section("RSA (rsa.rs): fresh 2048-bit key, signatures over MESSAGE")
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
print(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                        serialization.NoEncryption()).decode())
MESSAGE = b"IKEv2 signed octets: RealMessage | Nonce | prf(SK_p, ID')"
for name, pad, h in (
    ("Pkcs1Sha1Method1", padding.PKCS1v15(), hashes.SHA1()),
    ("Pkcs1Sha256", padding.PKCS1v15(), hashes.SHA256()),
    ("Pkcs1Sha384", padding.PKCS1v15(), hashes.SHA384()),
    ("Pkcs1Sha512", padding.PKCS1v15(), hashes.SHA512()),
    ("PssSha256", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()),
    ("PssSha384", padding.PSS(padding.MGF1(hashes.SHA384()), 48), hashes.SHA384()),
    ("PssSha512", padding.PSS(padding.MGF1(hashes.SHA512()), 64), hashes.SHA512()),
):
    sig = key.sign(MESSAGE, pad, h)
    key.public_key().verify(sig, MESSAGE, pad, h)
    print(name, sig.hex())
# PSS with a salt shorter than the hash: rswan's schemes fix salt = hash length and refuse it.
sig = key.sign(MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()), 20), hashes.SHA256())
print("PssSha256Salt20", sig.hex())
sys.exit(0)
