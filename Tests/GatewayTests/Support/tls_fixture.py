#!/usr/bin/env python3
"""Loopback TLS fixtures for the gateway's tests: a CA of their own, an HTTPS identity provider
(OpenID discovery and a JWKS the test can rotate, counting its fetches) and an HTTPS upstream.

  tls_fixture.py pki DIR                  ca.pem/ca.key, server.pem/server.key for localhost and
                                          127.0.0.1 signed by that CA, wrong-name.pem/.key (same CA,
                                          idp.example.net only), other-ca.pem (unrelated)
  tls_fixture.py idp-keys DIR             rsa.pem (2048), rsa2.pem, ec.pem (P-256) private keys
  tls_fixture.py jwks OUT KEY:KID ...     a JWK Set of those keys' public halves
  tls_fixture.py sign KEY ALG KID JSON [TYP]  a JWS of the claims (ALG none/HS256 allowed;
                                          HS256 signs with the key file's public PEM as secret)
  tls_fixture.py serve SPEC.json          serves until killed (spec: port, cert, key, mode
                                          "idp", "upstream" or "records", dir for state files)

idp state in DIR: jwks.json (served as is, re-read per fetch), cache_control (the header, default
"max-age=600"), fetches (the number of JWKS fetches, written after each), hang (present: a JWKS
fetch waits 20 s). upstream: every request answers 200 with JSON naming the path, the peer port
(one per connection) and the forwarded user; requests counts them.
"""
import base64, datetime, ipaddress, json, os, socket, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_ca(name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def leaf(ca_key, ca, names):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(names[1:]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def pki(d):
    ca_key, ca = make_ca("gateway tests CA")
    key, cert = leaf(ca_key, ca, ["localhost", x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    write(os.path.join(d, "ca.pem"), ca.public_bytes(serialization.Encoding.PEM))
    write(os.path.join(d, "ca.key"), pem_key(ca_key))
    write(os.path.join(d, "server.pem"), cert.public_bytes(serialization.Encoding.PEM))
    write(os.path.join(d, "server.key"), pem_key(key))
    # Signed by the same CA, for another name: a host-name check must refuse it on localhost.
    key, cert = leaf(ca_key, ca, ["idp.example.net", x509.DNSName("idp.example.net")])
    write(os.path.join(d, "wrong-name.pem"), cert.public_bytes(serialization.Encoding.PEM))
    write(os.path.join(d, "wrong-name.key"), pem_key(key))
    _, other = make_ca("an unrelated CA")
    write(os.path.join(d, "other-ca.pem"), other.public_bytes(serialization.Encoding.PEM))


def idp_keys(d):
    write(os.path.join(d, "rsa.pem"), pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    write(os.path.join(d, "rsa2.pem"), pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    write(os.path.join(d, "ec.pem"), pem_key(ec.generate_private_key(ec.SECP256R1())))


def b64(n, length=None):
    raw = n.to_bytes(length or (n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def jwk(path, kid):
    key = load_key(path).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        n = key.public_numbers()
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": b64(n.n), "e": b64(n.e)}
    n = key.public_numbers()
    return {"kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256", "x": b64(n.x, 32), "y": b64(n.y, 32)}


def sign(key_path, alg, kid, claims, typ=None):
    import jwt
    header = {"kid": kid} if kid else {}
    if typ:
        header["typ"] = typ
    if alg == "none":
        head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT", **header}).encode()).rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        return (head + b"." + body + b".").decode()
    if alg == "HS256":
        # The confusion attack: the public key's PEM used as an HMAC secret.
        import hmac, hashlib
        public = load_key(key_path).public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        head = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode()).rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        mac = hmac.new(public, head + b"." + body, hashlib.sha256).digest()
        return (head + b"." + body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    return jwt.encode(claims, load_key(key_path), algorithm=alg, headers=header)


def bump(path):
    n = int(open(path).read() or "0") if os.path.exists(path) else 0
    with open(path + ".tmp", "w") as f:
        f.write(str(n + 1))
    os.replace(path + ".tmp", path)


def serve_records(spec):
    """An HTTPS upstream that chooses its TLS records: the whole flight of one answer goes out in
    one send (so the records arrive together). /stray/...: the answer, then a second answer in a
    record of its own that nobody asked for; /drip/...: a 300-byte body in 300 one-byte records;
    anything else: 200 naming the path."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(spec["cert"], spec["key"])
    state = spec["dir"]
    lock = threading.Lock()
    srv = socket.create_server(("127.0.0.1", spec["port"]))

    def answer(body):
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def handle(conn):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_side=True)

        def flush():
            data = out.read()
            if data:
                conn.sendall(data)

        def feed():
            flush()
            d = conn.recv(65536)
            if not d:
                raise EOFError
            inc.write(d)

        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    feed()
            flush()
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        buf += tls.read(65536)
                    except ssl.SSLWantReadError:
                        feed()
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1]
                with lock:
                    bump(os.path.join(state, "requests"))
                if b"/stray/" in path:
                    tls.write(answer(b"first"))
                    tls.write(answer(b"EVIL!"))
                elif b"/drip/" in path:
                    tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n")
                    for _ in range(300):
                        tls.write(b"x")
                else:
                    tls.write(answer(path))
                flush()
        except (EOFError, OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def serve(spec):
    if spec["mode"] == "records":
        return serve_records(spec)
    lock = threading.Lock()
    state = spec.get("dir", "")
    port = spec["port"]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body, cache_control=None):
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if cache_control:
                self.send_header("Cache-Control", cache_control)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if spec["mode"] == "upstream":
                with lock:
                    bump(os.path.join(state, "requests"))
                self.answer(200, {"path": self.path, "peer_port": self.client_address[1],
                                  "user": self.headers.get("X-Forwarded-User"), "host": self.headers.get("Host")})
                return
            if self.path == "/.well-known/openid-configuration":
                self.answer(200, {"issuer": f"https://localhost:{port}/", "jwks_uri": f"https://localhost:{port}/keys"})
            elif self.path == "/keys":
                if os.path.exists(os.path.join(state, "hang")):
                    time.sleep(20)
                with lock:
                    bump(os.path.join(state, "fetches"))
                cc_path = os.path.join(state, "cache_control")
                cc = open(cc_path).read().strip() if os.path.exists(cc_path) else "max-age=600"
                self.answer(200, open(os.path.join(state, "jwks.json"), "rb").read(), cc)
            else:
                self.answer(404, {"error": "not found"})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(spec["cert"], spec["key"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def main():
    cmd = sys.argv[1]
    if cmd == "pki":
        pki(sys.argv[2])
    elif cmd == "idp-keys":
        idp_keys(sys.argv[2])
    elif cmd == "jwks":
        keys = [jwk(*a.split(":", 1)) for a in sys.argv[3:]]
        write(sys.argv[2], json.dumps({"keys": keys}).encode())
    elif cmd == "sign":
        print(sign(sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5]), *(sys.argv[6:7])))
    elif cmd == "serve":
        serve(json.load(open(sys.argv[2])))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
