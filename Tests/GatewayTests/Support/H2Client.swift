import Foundation
import Glibc
import XCTest

/// Runs Support/h2client.py (python's `h2`, Debian's python3-h2) against the gateway: one HTTP/2
/// connection per run, its streams' answers or resets, and the GOAWAY if one came.
enum H2Client {
    struct Stream {
        let status: Int?
        let headers: [(String, String)]
        let bodyLength: Int
        let bodySHA256: String
        let sentSHA256: String
        let text: String?
        let reset: Int?
        let ended: Bool

        func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }
        var json: [String: Any]? {
            text.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    struct Outcome {
        /// By stream id (1, 3, 5, ... in the order the requests were given).
        let streams: [Int: Stream]
        let goaway: Int?
        let eof: Bool
        let alpn: String?
        let settings: [String: Int]
        let raw: [String: Any]

        /// The answers in the order the requests were given.
        var ordered: [Stream] { streams.keys.sorted().map { streams[$0]! } }
    }

    /// RST_STREAM / GOAWAY codes (RFC 9113 §7).
    static let noError = 0, protocolError = 1, internalError = 2, refusedStream = 7, cancel = 8, enhanceYourCalm = 11

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("h2client.py")
    /// Debian's interpreter, where python3-h2 is installed (not whatever python3 is first on PATH).
    static let python = URL(fileURLWithPath: "/usr/bin/python3")

    /// A request: `headers` beside the pseudo-fields; `bodyLength` pattern bytes (announced by
    /// content-length unless `contentLength` is false); `raw` replaces the whole header list.
    static func request(_ method: String, _ path: String, headers: [(String, String)] = [], bodyLength: Int = 0,
                        contentLength: Bool = true, body: String? = nil, read: Bool = true) -> [String: Any] {
        var r: [String: Any] = ["method": method, "path": path, "headers": headers.map { [$0.0, $0.1] },
                                "body_len": bodyLength, "content_length": contentLength, "read": read]
        if let body { r["body"] = body }
        return r
    }

    /// A GET (or `read: false` one) of `path`.
    static func request(_ path: String, headers: [(String, String)] = [], read: Bool = true) -> [String: Any] {
        request("GET", path, headers: headers, read: read)
    }

    static func raw(_ fields: [(String, String)]) -> [String: Any] {
        ["raw": fields.map { [$0.0, $0.1] }, "path": "/"]
    }

    static func run(port: UInt16, tls: Bool = false, alpn: [String] = ["h2"], requests: [[String: Any]] = [],
                    mode: String = "normal", extra: [String: Any] = [:], timeout: Double = 30) throws -> Outcome {
        let input = try specText(port: port, tls: tls, alpn: alpn, requests: requests, mode: mode, extra: extra, timeout: timeout)
        let r = try GatewayBinary.runProgram(python, [script.path], stdin: input, timeout: timeout + 30)
        return try outcome(status: r.status, stdout: r.stdout, stderr: r.stderr)
    }

    /// A run in the background, while the test looks at the gateway; `wait` gives its outcome.
    struct Running {
        let program: RunningProgram

        func wait(seconds: Double = 60) throws -> Outcome {
            let r = program.wait(seconds: seconds)
            return try H2Client.outcome(status: r.status, stdout: r.stdout, stderr: r.stderr)
        }
    }

    static func start(port: UInt16, requests: [[String: Any]], mode: String = "normal", extra: [String: Any] = [:],
                      timeout: Double = 30) throws -> Running {
        Running(program: try RunningProgram(python, [script.path],
                                            stdin: specText(port: port, tls: false, alpn: ["h2"], requests: requests, mode: mode,
                                                            extra: extra, timeout: timeout)))
    }

    private static func specText(port: UInt16, tls: Bool, alpn: [String], requests: [[String: Any]], mode: String,
                                 extra: [String: Any], timeout: Double) throws -> String {
        var spec: [String: Any] = ["port": Int(port), "tls": tls, "alpn": alpn, "requests": requests, "mode": mode, "timeout": timeout]
        for (k, v) in extra { spec[k] = v }
        return String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
    }

    static func outcome(status: Int32, stdout: String, stderr: String) throws -> Outcome {
        guard status == 0, let object = try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] else {
            throw HarnessError("h2client failed (\(status)): \(stderr.suffix(2000))")
        }
        var streams: [Int: Stream] = [:]
        for (k, v) in object["streams"] as? [String: [String: Any]] ?? [:] {
            streams[Int(k)!] = Stream(
                status: v["status"] as? Int,
                headers: (v["headers"] as? [[String]] ?? []).map { ($0[0], $0[1]) },
                bodyLength: v["body_len"] as? Int ?? 0, bodySHA256: v["body_sha256"] as? String ?? "",
                sentSHA256: v["sent_sha256"] as? String ?? "", text: v["text"] as? String,
                reset: v["reset"] as? Int, ended: v["ended"] as? Bool ?? false)
        }
        return Outcome(streams: streams, goaway: object["goaway"] as? Int, eof: object["eof"] as? Bool ?? false,
                       alpn: object["alpn"] as? String, settings: object["settings"] as? [String: Int] ?? [:], raw: object)
    }
}
