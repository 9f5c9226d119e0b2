import Foundation
import Glibc
import XCTest

/// Runs the real `gateway` binary that `swift build` put beside the test bundle.
enum GatewayBinary {
    static var url: URL {
        if let explicit = ProcessInfo.processInfo.environment["GATEWAY_BINARY"] {
            return URL(fileURLWithPath: explicit)
        }
        // The binary sits in the build products folder, beside the test bundle (on Linux the
        // bundle URL is that folder itself; elsewhere it is .../gatewayPackageTests.xctest).
        var folder = Bundle(for: Marker.self).bundleURL
        if folder.pathExtension == "xctest" { folder.deleteLastPathComponent() }
        return folder.appendingPathComponent("gateway")
    }

    private final class Marker {}

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `gateway args...` to completion (bounded by `timeout` seconds), feeding `stdin`.
    static func run(_ args: [String], stdin: String? = nil, environment: [String: String]? = nil,
                    timeout: TimeInterval = 60) throws -> Result {
        try runProgram(url, args, stdin: stdin, environment: environment, timeout: timeout)
    }

    /// Runs any program to completion (bounded by `timeout` seconds; killed, by its pid, past it).
    static func runProgram(_ program: URL, _ args: [String], stdin: String? = nil, environment: [String: String]? = nil,
                           timeout: TimeInterval = 60) throws -> Result {
        let running = try RunningProgram(program, args, stdin: stdin, environment: environment)
        let r = running.wait(seconds: timeout)
        if running.timedOut {
            throw NSError(domain: "gateway", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(program.lastPathComponent) \(args) timed out"])
        }
        return r
    }
}

/// A program running in the background while the test goes on (a client the test outlives, or
/// one it signals the gateway under); `wait` collects its output. Killed, by its pid, past the
/// time `wait` allows.
final class RunningProgram: @unchecked Sendable {
    private let process = Process()
    private let out = Pipe(), err = Pipe()
    private let done = DispatchGroup()
    private var stdout = Data(), stderr = Data()

    /// It ran past the time `wait` allowed and was killed.
    private(set) var timedOut = false

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    init(_ program: URL, _ args: [String], stdin: String? = nil, environment: [String: String]? = nil) throws {
        let input = Pipe()
        process.executableURL = program
        process.arguments = args
        if let environment { process.environment = environment }
        process.standardInput = input
        process.standardOutput = out
        process.standardError = err
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        done.enter()
        DispatchQueue.global().async { self.stdout = self.out.fileHandleForReading.readDataToEndOfFile(); self.done.leave() }
        done.enter()
        DispatchQueue.global().async { self.stderr = self.err.fileHandleForReading.readDataToEndOfFile(); self.done.leave() }
    }

    func wait(seconds: Double = 60) -> GatewayBinary.Result {
        if done.wait(timeout: .now() + seconds) == .timedOut {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            done.wait()
        }
        process.waitUntilExit()
        return GatewayBinary.Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                                    stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// A temporary directory removed when the test ends.
final class TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ name: String, _ text: String) throws -> String {
        let p = path(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
}

/// Polls `condition` every 20 ms until it holds (true) or `seconds` pass (false).
func waitUntil(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
