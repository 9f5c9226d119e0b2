import Foundation
import Glibc
import TokenCore
import XCTest

/// Starts the real `gateway` binary on 127.0.0.1 with a generated configuration and keys, and
/// (unless told otherwise) a `gateway demo-upstream` process as its upstream. Everything is
/// stopped by pid when the harness goes away.
final class GatewayHarness {
    let dir: TempDir
    let port: UInt16
    let upstreamPort: UInt16
    let ring: KeyRing
    let issuer = "datarhei-core"
    private(set) var gateway: Process?
    private var upstream: Process?
    let logPath: String
    let configPath: String
    /// Added to the gateway's environment (beside PATH).
    let environment: [String: String]
    /// HTTPS beside plain HTTP (`tls: true`): its port and the self-signed pair it serves.
    private(set) var tlsPort: UInt16 = 0
    var certPath: String { dir.path("cert.pem") }
    var keyPath: String { dir.path("key.pem") }

    /// `routes`: extra TOML for [[route]] blocks ("UPSTREAM" is replaced by the upstream URL);
    /// nil gives the default protected /api/v3/ route plus an open /open/ route.
    /// `sections`: more TOML tables (e.g. `[login]`), placed before the routes.
    init(settings: String = "", sections: String = "", routes: String? = nil, startUpstream: Bool = true, upstreamPort: UInt16? = nil,
         workers: Int = 1, password: String = "test-password-not-used", authEnabled: Bool = true,
         tls: Bool = false, tlsSettings: String = "", environment: [String: String] = [:]) throws {
        self.environment = environment
        dir = try TempDir()
        port = try freePort()
        var tlsSection = ""
        if tls {
            tlsPort = try freePort()
            let made = try GatewayBinary.run(["tls", "self-signed", "--cert", dir.path("cert.pem"), "--key", dir.path("key.pem")])
            guard made.status == 0 else { throw HarnessError("tls self-signed failed: \(made.stderr)") }
            tlsSection = """
                [tls]
                enable = true
                address = "127.0.0.1:\(tlsPort)"
                cert_file = "\(dir.path("cert.pem"))"
                key_file = "\(dir.path("key.pem"))"
                \(tlsSettings)
                """
        }
        self.upstreamPort = try upstreamPort ?? freePort()
        ring = try KeyRing(keys: [
            Key(kid: "old", algorithm: .hs256, material: .secret(Crypto.randomBytes(32)), state: .verify),
            Key(kid: "cur", algorithm: .hs256, material: .secret(Crypto.randomBytes(32)), state: .active),
        ])
        let keys = try dir.write("keys.json", ring.jwkSetText())
        chmod(keys, 0o600)
        let upstreamURL = "http://127.0.0.1:\(self.upstreamPort)"
        let routeText = (routes ?? """
            [[route]]
            prefix = "/api/v3/"
            upstream = "UPSTREAM"
            auth = "required"

            [[route]]
            prefix = "/open/"
            upstream = "UPSTREAM"
            auth = "none"
            """).replacingOccurrences(of: "UPSTREAM", with: upstreamURL)
        let config = """
            [server]
            listen = "127.0.0.1:\(port)"
            workers = \(workers)
            data_dir = "\(dir.path("data"))"
            \(settings)

            [api.auth]
            enable = \(authEnabled)
            username = "admin"
            password = "\(password)"

            [api.auth.jwt]
            keys_file = "\(keys)"

            \(sections)

            \(tlsSection)

            \(routeText)
            """
        configPath = try dir.write("gateway.conf", config)
        logPath = dir.path("gateway.log")
        if startUpstream { try startDemoUpstream() }
        try start()
    }

    /// A gateway whose one route, `/api/v3/`, leads to `spy` (a listener that never answers),
    /// to prove what is forwarded and what is not.
    convenience init(spy: SpyUpstream, auth: String = "required", settings: String = "", tls: Bool = false) throws {
        try self.init(settings: settings, routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "http://127.0.0.1:\(spy.port)"
            auth = "\(auth)"
            """, startUpstream: false, tls: tls)
    }

    deinit { stop() }

    func startDemoUpstream() throws {
        let p = Process()
        p.executableURL = GatewayBinary.url
        p.arguments = ["demo-upstream", "--listen", "127.0.0.1:\(upstreamPort)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        upstream = p
        try waitForPort(upstreamPort)
    }

    func stopUpstream() {
        if let p = upstream, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        upstream = nil
    }

    func start() throws {
        let p = Process()
        p.executableURL = GatewayBinary.url
        p.arguments = ["run", "--config", configPath]
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        log.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        p.environment = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
        try p.run()
        gateway = p
        try waitForPort(port)
        if tlsPort != 0 { try waitForPort(tlsPort) }
    }

    func stop() {
        if let p = gateway, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        gateway = nil
        stopUpstream()
    }

    /// Sends a signal to the gateway process (which this harness started).
    func signal(_ sig: Int32) { if let p = gateway { kill(p.processIdentifier, sig) } }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    // MARK: tokens

    func token(sub: String = "alice", use: TokenUse = .access, now: Int64 = Int64(Date().timeIntervalSince1970),
               lifetime: Int64? = nil) -> String {
        try! TokenIssuer(settings: IssuerSettings(issuer: issuer)).issue(subject: sub, use: use, ring: ring, now: now, lifetime: lifetime).token
    }

    var bearer: String { "Authorization: Bearer \(token())\r\n" }

    /// `POST /api/login` with a JSON body, on a connection of its own; `headers` end in CRLF.
    func login(username: String = "admin", password: String, headers: String = "") throws -> HTTPResponse {
        let body = try String(decoding: JSONSerialization.data(withJSONObject: ["username": username, "password": password]), as: UTF8.self)
        return try request("POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(headers)"
                           + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    // MARK: clients

    func connect() throws -> RawClient { try RawClient(port: port) }

    /// A TLS connection to the HTTPS listener, trusting the harness's certificate.
    func connectTLS(_ adjust: (inout TLSClientOptions) -> Void = { _ in }) throws -> RawClient {
        var options = TLSClientOptions(caFile: certPath)
        adjust(&options)
        return try RawClient(port: tlsPort, tls: options)
    }

    /// One request on a fresh connection; the whole answer.
    func request(_ raw: String) throws -> HTTPResponse {
        let c = try connect()
        try c.send(raw)
        return try c.readResponse()
    }

    func get(_ path: String, headers: String = "") throws -> HTTPResponse {
        try request("GET \(path) HTTP/1.1\r\nHost: gw.test\r\n\(headers)\r\n")
    }
}

/// A port nobody listens on now (bound to 0 and released).
func freePort() throws -> UInt16 {
    let (fd, port) = loopbackSocket(listenBacklog: nil)
    close(fd)
    return port
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel picks (listening when given a backlog).
func loopbackSocket(listenBacklog: Int32?, nonBlocking: Bool = false, reuseAddress: Bool = false) -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0), 0)
    if reuseAddress {
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    if let listenBacklog { listen(fd, listenBacklog) }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return (fd, UInt16(bigEndian: addr.sin_port))
}

func waitForPort(_ port: UInt16, seconds: Double = 10) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let c = try? RawClient(port: port, timeout: 1) { c.close(); return }
        usleep(20_000)
    }
    throw HarnessError("nothing listens on port \(port) after \(seconds) s")
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A listener that never answers: pointing a route at it proves whether the gateway forwarded
/// anything (a connection attempt shows up as an acceptable connection).
final class SpyUpstream {
    let fd: Int32
    let port: UInt16

    init() throws {
        (fd, port) = loopbackSocket(listenBacklog: 128, nonBlocking: true)
    }

    deinit { close(fd) }

    /// What the gateway sent on the connections it opened so far (each accepted and read for up
    /// to 0.2 s). Connections that carried no byte (the readiness probe's TCP connects) are not
    /// requests and are left out. An absence has no condition to poll for, so a test that
    /// expects nothing watches for `wait` seconds: long enough for a request the gateway wrongly
    /// passed on after answering (a smuggled second request) to arrive.
    func received(wait: Double = 0.2) -> [String] {
        usleep(UInt32(wait * 1_000_000))
        var out: [String] = []
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { break }
            var buf = [UInt8](repeating: 0, count: 65536)
            var tv = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let n = read(c, &buf, buf.count)
            if n > 0 { out.append(String(decoding: buf[0..<n], as: UTF8.self)) }
            close(c)
        }
        return out
    }
}

/// An upstream that answers every connection with fixed bytes after reading a request head:
/// for upstream misbehaviour the demo upstream never shows.
final class ScriptedUpstream: @unchecked Sendable {
    let port: UInt16
    private let fd: Int32
    private let response: [UInt8]
    private let closeAfter: Bool

    init(response: String, closeAfter: Bool = true) throws {
        self.response = Array(response.utf8)
        self.closeAfter = closeAfter
        (fd, port) = loopbackSocket(listenBacklog: 64, reuseAddress: true)
        Thread.detachNewThread { [self] in self.serve() }
    }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

    private func serve() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            var buf = [UInt8](repeating: 0, count: 65536)
            var have = 0
            while have < buf.count {
                let n = buf.withUnsafeMutableBytes { read(c, $0.baseAddress! + have, $0.count - have) }
                if n <= 0 { break }
                have += n
                if String(decoding: buf[0..<have], as: UTF8.self).contains("\r\n\r\n") { break }
            }
            _ = response.withUnsafeBytes { send(c, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if closeAfter { close(c) } else { usleep(3_000_000); close(c) }
        }
    }
}
