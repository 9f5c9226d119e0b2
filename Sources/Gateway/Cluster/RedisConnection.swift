/// Where `[cluster] redis` points: `redis://host:port[/db]`, or `rediss://` for TLS (verified
/// like any connection the gateway makes). Credentials never sit in the URL: they come from
/// `redis_password_file`.
struct RedisEndpoint: Equatable, Sendable {
    let host: String
    let port: UInt16
    let db: Int
    let tls: Bool

    var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    init?(_ url: String) {
        let secure = url.hasPrefix("rediss://")
        guard secure || url.hasPrefix("redis://") else { return nil }
        var rest = Substring(url.dropFirst(secure ? "rediss://".count : "redis://".count))
        guard !rest.contains("@"), !rest.contains("?"), !rest.contains("#") else { return nil }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty {
                guard path.allSatisfy(\.isASCII), let n = Int(path), n >= 0, n < 1_000_000 else { return nil }
                db = n
            }
            rest = rest[..<slash]
        }
        guard let (host, port) = try? SocketAddress.split(rest.contains(":") && !rest.hasSuffix("]") ? String(rest) : String(rest) + ":6379") else {
            return nil
        }
        self.host = host
        self.port = port
        self.db = db
        self.tls = secure
    }
}

enum RedisError: Error, Equatable, CustomStringConvertible {
    case connect(String)
    /// The server answered with an error reply.
    case server(String)
    /// A reply that is not RESP, or not the one a command expects.
    case protocolError(String)
    case timeout
    case closed

    var description: String {
        switch self {
        case let .connect(why): return "cannot connect: \(why)"
        case let .server(message): return "Redis says: \(message)"
        case let .protocolError(why): return "not Redis's protocol: \(why)"
        case .timeout: return "no answer in time"
        case .closed: return "the connection closed"
        }
    }
}

/// One connection to Redis for a background thread, never an event loop: RESP3 through
/// `HELLO 3` (RESP2 with `AUTH` when the server is older), `SELECT` on connect, one round trip per
/// call or per pipeline, each within its deadline (`BlockingChannel`). After any failure it is
/// unusable; the caller makes a new one (with its own backoff).
final class RedisConnection {
    private let channel: BlockingChannel
    private var pending: [UInt8] = []
    private(set) var failed = false
    /// 3 after a successful `HELLO 3`, else 2.
    private(set) var protocolVersion = 2
    let limits: RESP.Limits

    /// `credentials`: an ACL user and password, or the password alone (`requirepass`).
    init(_ endpoint: RedisEndpoint, credentials: (user: String?, password: String)?, trust: TLSClientContext?,
         timeoutMs: Int, limits: RESP.Limits = RESP.Limits()) throws(RedisError) {
        self.limits = limits
        let address: SocketAddress
        do {
            address = try SocketAddress.resolve(endpoint.hostPort)
        } catch {
            throw .connect("\(error)")
        }
        let deadline = BlockingChannel.Deadline(milliseconds: timeoutMs)
        let tls = endpoint.tls ? trust.map { UpstreamTLS(context: $0, serverName: endpoint.host) } : nil
        if endpoint.tls && tls == nil { throw .connect("rediss:// needs a TLS trust") }
        switch BlockingChannel.open(address, tls: tls, deadline: deadline) {
        case let .success(c): channel = c
        case let .failure(f): throw .connect("\(f)")
        }
        var hello = ["HELLO", "3"]
        if let credentials { hello += ["AUTH", credentials.user ?? "default", credentials.password] }
        switch try round([hello], deadline: deadline)[0] {
        case .map, .array:
            protocolVersion = 3
        case let .error(message) where message.hasPrefix("NOPROTO") || message.hasPrefix("ERR unknown command"):
            // Before Redis 6: RESP2, AUTH apart.
            if let credentials {
                let auth = credentials.user.map { ["AUTH", $0, credentials.password] } ?? ["AUTH", credentials.password]
                if case let .error(message) = try round([auth], deadline: deadline)[0] { throw .server(message) }
            }
        case let .error(message):
            throw .server(message)
        default:
            throw .protocolError("an unexpected answer to HELLO")
        }
        if endpoint.db != 0, case let .error(message) = try round([["SELECT", String(endpoint.db)]], deadline: deadline)[0] {
            throw .server(message)
        }
    }

    deinit { channel.close() }

    /// One command; its reply, an error reply thrown as `.server`.
    func call(_ parts: [String], timeoutMs: Int) throws(RedisError) -> RESPValue {
        let reply = try round([parts], deadline: BlockingChannel.Deadline(milliseconds: timeoutMs))[0]
        if case let .error(message) = reply { throw .server(message) }
        return reply
    }

    /// Several commands in one round trip; their replies in order (error replies included, as
    /// values: each command succeeds or fails alone).
    func pipeline(_ commands: [[String]], timeoutMs: Int) throws(RedisError) -> [RESPValue] {
        try round(commands, deadline: BlockingChannel.Deadline(milliseconds: timeoutMs))
    }

    func close() {
        failed = true
        channel.close()
    }

    private func round(_ commands: [[String]], deadline: BlockingChannel.Deadline) throws(RedisError) -> [RESPValue] {
        guard !failed else { throw .closed }
        do throws(RedisError) {
            var bytes: [UInt8] = []
            for c in commands { bytes += RESP.command(c) }
            if let f = channel.write(bytes, deadline: deadline) { throw f == .timeout ? RedisError.timeout : .closed }
            var replies: [RESPValue] = []
            while replies.count < commands.count {
                let reply = try next(deadline: deadline)
                // Out-of-band pushes (RESP3) answer no command.
                if case .push = reply { continue }
                replies.append(reply)
            }
            return replies
        } catch {
            close()
            throw error
        }
    }

    private func next(deadline: BlockingChannel.Deadline) throws(RedisError) -> RESPValue {
        while true {
            switch RESP.parse(pending, limits: limits) {
            case let .complete(value, consumed):
                pending.removeFirst(consumed)
                return value
            case let .malformed(why):
                throw .protocolError(why)
            case .incomplete:
                switch channel.read(into: &pending, deadline: deadline) {
                case .success(0): throw .closed
                case .success: continue
                case .failure(.timeout): throw .timeout
                case .failure: throw .closed
                }
            }
        }
    }
}
