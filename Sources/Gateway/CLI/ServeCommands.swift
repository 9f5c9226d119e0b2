import CGatewayShims
import Foundation
import Glibc

/// `gateway run`, `gateway check-config`, `gateway demo-upstream`.
enum ServeCommands {
    static func run(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["config"], switches: ["demo", "takeover"])
        guard a.positional.isEmpty else { throw UsageError("run takes no positional arguments") }
        // Before any thread exists (the log writer, the demo upstream): every thread inherits the
        // mask, so these signals reach only the signalfd in `Server.run`.
        let signals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2]
        _ = signals.withUnsafeBufferPointer { gw_block_signals($0.baseAddress, Int32($0.count)) }
        let log = LogWriter()
        let server: Server
        do {
            server = try Server(configPath: a.options["config"] ?? "gateway.conf",
                                environment: ProcessInfo.processInfo.environment, log: log, demo: a.switches.contains("demo"))
        } catch {
            log.flush()
            printError("gateway: \(error)")
            return 1
        }
        let code = server.run(takeover: a.switches.contains("takeover"))
        // Every worker has drained and the log is written: leave without the atexit handlers
        // (OpenSSL's cleanup among them), which helper threads still inside libcrypto (the
        // blocking pool, the probes) could hold up. The peer bench twice saw an exit take > 5 s.
        fflush(nil)   // every C stream
        _exit(code)
    }

    static func checkConfig(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["config"])
        guard a.positional.isEmpty else { throw UsageError("check-config takes no positional arguments") }
        let path = a.options["config"] ?? "gateway.conf"
        do {
            let loaded = try ConfigLoader.load(path: path, environment: ProcessInfo.processInfo.environment)
            for w in loaded.warnings { printError("warning: \(w)") }
            _ = try GatewayState(config: loaded.config, ring: try .single(secret: Array(repeating: 0x61, count: 64), kid: "check"),
                                 revocations: .init())
            print(ConfigLoader.effectiveText(loaded.config), terminator: "")
            printError("\(path): ok")
            return 0
        } catch {
            printError("\(error)")
            return 1
        }
    }

    /// `GET /healthz` (or `--path`) on `--address`, 2 s at most: 0 on a 200, 1 otherwise.
    static func healthcheck(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["address", "path"])
        guard a.positional.isEmpty else { throw UsageError("healthcheck takes no positional arguments") }
        let hostPort = a.options["address"] ?? "127.0.0.1:8080"
        let path = a.options["path"] ?? "/healthz"
        guard path.hasPrefix("/"), !path.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else {
            throw UsageError("--path must be a path such as /healthz")
        }
        let address = try SocketAddress.resolve(hostPort)
        switch BlockingFetch(maxBodyBytes: 64 * 1024, timeoutSeconds: 2).get(address: address, hostHeader: hostPort, path: path, tls: nil) {
        case let .success(answer) where answer.status == 200:
            return 0
        case let .success(answer):
            printError("gateway healthcheck: \(hostPort)\(path) answered \(answer.status)")
            return 1
        case let .failure(why):
            printError("gateway healthcheck: \(hostPort)\(path): \(why)")
            return 1
        }
    }

    static func demoUpstream(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["listen"])
        guard a.positional.isEmpty else { throw UsageError("demo-upstream takes no positional arguments") }
        do {
            try DemoUpstream.runForever(listen: try a.require("listen"))
        } catch let e as UsageError {
            throw e
        } catch {
            printError("gateway: demo upstream: \(error)")
            return 1
        }
    }
}
