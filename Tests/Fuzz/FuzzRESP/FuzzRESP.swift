import FuzzSupport
@testable import Gateway

/// Redis replies (`RESP.parse`), which come from the network, by their properties:
/// - the parser never traps, and never takes more bytes than it was given;
/// - a complete reply parses the same from exactly the bytes it took, and every strict prefix
///   of those bytes is incomplete (a reply is never decided before its last byte);
/// - a command written by `RESP.command` (input split at 0x00) reads back as an array of
///   exactly those bulk strings.
enum RESPFuzz {
    static func check(_ input: UnsafeRawBufferPointer) {
        let bytes = Array(input)
        switch RESP.parse(bytes) {
        case let .complete(value, consumed):
            precondition(consumed > 0 && consumed <= bytes.count, "took \(consumed) of \(bytes.count) bytes")
            let exact = Array(bytes[0..<consumed])
            precondition(RESP.parse(exact) == .complete(value, consumed: consumed), "not the same from its own bytes")
            for cut in Set([0, consumed / 2, consumed - 1]) where cut < consumed {
                precondition(RESP.parse(Array(exact[0..<cut])) == .incomplete, "decided after \(cut) of \(consumed) bytes")
            }
        case .incomplete, .malformed:
            break
        }
        let parts = bytes.split(separator: 0, omittingEmptySubsequences: false).prefix(64).map(Array.init)
        let encoded = RESP.command(parts)
        precondition(RESP.parse(encoded) == .complete(.array(parts.map { .bulk($0) }), consumed: encoded.count), "a command does not read back")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    RESPFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
