#!/usr/bin/env python3
"""Rebuilds the field-failure library in Storage/examples deterministically (fixed times, fixed salts).

Each example is one or two recordings (see `vphone boot --record`): `setup/` is the phone's last good boot and
`incident/` the boot that went wrong. Replay them with `vphone boot --replay DIR` (see README.md here).
Run from anywhere: python3 Storage/examples/make-examples.py
"""
import base64, json, os, shutil, subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "http://prov.example.net"
MAC = "0080F0C571EB"
T0 = 1_795_000_000_000  # 2026-11-18T11:06:40Z
DAY = 86_400_000
KEY = "Xk3b9TqP0vLmZ2sR8wYc4NdH6jFa1Ue7"  # the example's file key (not a secret: it is an example)

def xml(device="", initial=""):
    out = "<PANASIPPhoneConfig>\n"
    if initial: out += "<Initial>\n" + initial + "</Initial>\n"
    if device: out += "<Device>\n" + device + "</Device>\n"
    return out + "</PANASIPPhoneConfig>\n"

def initial(std="Config{MAC}.cfg", prod="Config{MODEL}.cfg", master="ConfigCom.cfg"):
    return xml(initial="<CfgFiles>\n"
               f"<CFG_STANDARD_FILE_PATH>{BASE}/{std}</CFG_STANDARD_FILE_PATH>\n"
               f"<CFG_PRODUCT_FILE_PATH>{BASE}/{prod}</CFG_PRODUCT_FILE_PATH>\n"
               f"<CFG_MASTER_FILE_PATH>{BASE}/{master}</CFG_MASTER_FILE_PATH>\n</CfgFiles>\n")

STANDARD = xml('<Lines><Line idx="1"><Sip>\n<PHONE_NUMBER>201</PHONE_NUMBER>\n<SIP_AUTHID>201</SIP_AUTHID>\n'
               '<SIP_PASS>s3cret-201</SIP_PASS>\n<LINE_ENABLE>Y</LINE_ENABLE>\n</Sip></Line></Lines>\n')
PRODUCT = xml('<Lines><Line idx="1"><Sip>\n<SIP_RGSTR_ADDR>pbx.example.net</SIP_RGSTR_ADDR>\n'
              '<SIP_PRXY_ADDR>pbx.example.net</SIP_PRXY_ADDR>\n</Sip></Line></Lines>\n')
MASTER = xml('<System><Time>\n<NTP_ADDR>ntp.example.net</NTP_ADDR>\n<TIME_ZONE>60</TIME_ZONE>\n</Time></System>\n'
             '<Lines><Line idx="1"><Sip><REG_EXPIRE_TIME>3600</REG_EXPIRE_TIME></Sip></Line></Lines>\n')
SEED = """<PANASIPPhoneConfig>
<Initial>
<CfgFiles>
<CFG_STANDARD_FILE_PATH>http://prov.com/Config{MAC}.cfg</CFG_STANDARD_FILE_PATH>
<CFG_PRODUCT_FILE_PATH>http:/prov.com/Config{MODEL}.cfg</CFG_PRODUCT_FILE_PATH
<CFG_MASTER_FILE_PATH>http://prov.com/ConfigCom.cfg</CFG_MASTER_FILE_PATH>
</CfgFiles>
</CfgFiles>
</Initial>
</PANASIPPhoneConfig>
"""

def encrypt(text, md, salt="0102030405060708"):
    """What `openssl enc -aes-128-cbc -a -salt -md MD -pass pass:KEY` makes, with a fixed salt (OpenSSL 3 omits the
    Salted__ header when -S is given, so the header is put back here)."""
    raw = subprocess.run(["openssl", "enc", "-aes-128-cbc", "-md", md, "-S", salt, "-pass", "pass:" + KEY],
                         input=text.encode(), capture_output=True, check=True).stdout
    if not raw.startswith(b"Salted__"):
        raw = b"Salted__" + bytes.fromhex(salt) + raw
    b64 = base64.b64encode(raw).decode()
    return ("\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) + "\n").encode()

def url(path):
    return f"{BASE}/{path.replace('{MAC}', MAC).replace('{MODEL}', 'KX-UTG300')}"

def recording(dirname, start, exchanges):
    """exchanges: (path, body_bytes_or_text) or (path, ('fail', kind, status, message))."""
    d = os.path.join(HERE, dirname)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    out = []
    for seq, (path, answer) in enumerate(exchanges, 1):
        e = {"seq": seq, "url": url(path), "timings_us": {"connect": 300, "dns": 20, "first_byte": 900, "tls": 0,
                                                             "total": 1000}}
        if isinstance(answer, tuple):
            _, kind, status, message = answer
            e["failure"] = {"kind": kind, "message": message}
            if status is not None: e["failure"]["status"] = status
        else:
            body = answer.encode() if isinstance(answer, str) else answer
            name = f"body-{seq:04d}.bin"
            with open(os.path.join(d, name), "wb") as f: f.write(body)
            e.update({"status": 200, "body": name, "bytes": len(body), "content_type": "text/plain"})
        out.append(e)
    manifest = {"format": "vphone-recording/1", "mac": MAC, "phone_start_ms": start,
                "discovery": {"prov_url": BASE + "/"}, "exchanges": out}
    with open(os.path.join(d, "recording.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")

def good_boot(dirname, start, std=STANDARD, prod=PRODUCT, master=MASTER, init=None):
    recording(dirname, start, [("KX-UTG300.cfg", init or initial()), ("Config{MAC}.cfg", std),
                               ("Config{MODEL}.cfg", prod), ("ConfigCom.cfg", master)])

# 1. The master file 404s one night: the saved copy stands in, nothing is lost.
good_boot("master-404/setup", T0)
recording("master-404/incident", T0 + DAY, [
    ("KX-UTG300.cfg", initial()), ("Config{MAC}.cfg", STANDARD), ("Config{MODEL}.cfg", PRODUCT),
    ("ConfigCom.cfg", ("fail", "http_status", 404, "HTTP 404 Not Found from prov.example.net")),
])

# 2. The server's OpenSSL was upgraded and the master file re-encrypted with its defaults (SHA-256 key derivation).
std_with_key = STANDARD.replace("<Lines>", f"<System><Prov><CFG_FILE_KEY>{KEY}</CFG_FILE_KEY></Prov></System>\n<Lines>")
enc_init = initial(prod="Config{MODEL}.cfg.enc", master="ConfigCom.cfg.enc")
recording("sha256-key/setup", T0, [
    ("KX-UTG300.cfg", enc_init), ("Config{MAC}.cfg", std_with_key),
    ("Config{MODEL}.cfg.enc", encrypt(PRODUCT, "md5")), ("ConfigCom.cfg.enc", encrypt(MASTER, "md5")),
])
recording("sha256-key/incident", T0 + DAY, [
    ("KX-UTG300.cfg", enc_init), ("Config{MAC}.cfg", encrypt(STANDARD, "md5", "1112131415161718")),
    ("Config{MODEL}.cfg.enc", encrypt(PRODUCT, "md5", "2122232425262728")),
    ("ConfigCom.cfg.enc", encrypt(MASTER.replace("ntp.example.net", "ntp2.example.net"), "sha256", "3132333435363738")),
])

# 3. A brand-new phone meets the guide's own (malformed) initial file.
recording("malformed-initial/incident", T0, [("KX-UTG300.cfg", SEED)])

# 4. A local edit survives provisioning, except where the file says perm="!".
good_boot("local-edit/setup", T0)
recording("local-edit/incident", T0 + DAY, [
    ("KX-UTG300.cfg", initial()),
    ("Config{MAC}.cfg", STANDARD.replace("<PHONE_NUMBER>201", '<PHONE_NUMBER perm="!">201')),
    ("Config{MODEL}.cfg", PRODUCT), ("ConfigCom.cfg", MASTER.replace("ntp.example.net", "ntp2.example.net")),
])
print("rebuilt", HERE)
