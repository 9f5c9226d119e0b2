import Foundation

/// What every fuzz target shares: a replay entry point (each argument a file or a folder of
/// files, run through the target's check without libFuzzer, so a plain build replays the
/// committed corpus), and a reader of choices from the front of an input.
public enum FuzzReplay {
    /// The target's entry point: libFuzzer's driver in a fuzzing build (`-D FUZZING`, linked with
    /// libFuzzer's no-main runtime), else a replay of the files named on the command line.
    public static func main(_ one: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, one))
        #else
        run { input in _ = one(input.bindMemory(to: UInt8.self).baseAddress, input.count) }
        #endif
    }

    /// Runs `check` over every file named by the command line; exits 0 when all ran.
    public static func run(_ check: (UnsafeRawBufferPointer) -> Void) -> Never {
        var files: [String] = []
        for arg in CommandLine.arguments.dropFirst() where !arg.hasPrefix("-") {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: arg, isDirectory: &isDir) else { continue }
            if isDir.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: arg)) ?? []
                files += names.sorted().map { arg + "/" + $0 }
            } else {
                files.append(arg)
            }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            data.withUnsafeBytes { check($0) }
        }
        print("replayed \(files.count) inputs")
        exit(0)
    }
}

/// Takes small choices (split points, capacities, limits) from the front of a fuzz input; the
/// rest is the message under test.
public struct FuzzChoices {
    private let bytes: UnsafeRawBufferPointer
    private var next = 0
    public let count: Int

    /// The first `count` bytes are choices (zero when the input is shorter).
    public init(_ input: UnsafeRawBufferPointer, count: Int) {
        bytes = input
        self.count = min(count, input.count)
    }

    /// The input after the choices.
    public var rest: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[count...]) }

    public mutating func byte() -> UInt8 {
        defer { next += 1 }
        return next < count ? bytes[next] : 0
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32
#endif
