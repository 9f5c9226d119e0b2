import FuzzSupport
@testable import Gateway

/// `Router.checkTarget`: whatever it accepts, an independent reading of the path finds no dot
/// segment (also with `;parameters`), no `//`, no `\`, and no percent-encoded `.`, `/`, `\` or
/// `%`, nor an overlong UTF-8 form of any byte.
enum TargetFuzz {
    static func check(_ input: UnsafeRawBufferPointer) {
        guard let pathEnd = try? Router.checkTarget(input) else { return }
        let path = Array(input[0..<pathEnd])
        precondition(path.first == UInt8(ascii: "/"), "accepted a target that does not start with /")
        precondition(!path.contains(UInt8(ascii: "#")) && !path.contains(UInt8(ascii: "?")))
        precondition(!path.contains(UInt8(ascii: "\\")), "accepted a backslash")
        // Segments, as a server that drops `;parameters` reads them.
        let segments = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        for (i, segment) in segments.enumerated() {
            precondition(!segment.isEmpty || i == segments.count - 1, "accepted an empty segment (//)")
            let name = segment.split(separator: UInt8(ascii: ";"), maxSplits: 1, omittingEmptySubsequences: false).first ?? []
            precondition(!(name.elementsEqual([0x2E]) || name.elementsEqual([0x2E, 0x2E])), "accepted a dot segment")
        }
        // Percent-decoding, byte by byte.
        var decoded: [UInt8] = []
        var k = 0
        while k < path.count {
            if path[k] == UInt8(ascii: "%") {
                precondition(k + 2 < path.count, "accepted a cut escape")
                let h = hex(path[k + 1]), l = hex(path[k + 2])
                precondition(h != nil && l != nil, "accepted a bad escape")
                let v = h! << 4 | l!
                precondition(![0x2E, 0x2F, 0x5C, 0x25].contains(v), "accepted an encoded . / \\ or %")
                decoded.append(v)
                k += 3
            } else {
                decoded.append(path[k])
                k += 1
            }
        }
        // No overlong UTF-8 sequence in what the escapes spell.
        for (i, b) in decoded.enumerated() {
            precondition(b != 0xC0 && b != 0xC1, "accepted an overlong two-byte form")
            if b == 0xE0 { precondition(i + 1 < decoded.count && decoded[i + 1] >= 0xA0, "accepted an overlong three-byte form") }
            if b == 0xF0 { precondition(i + 1 < decoded.count && decoded[i + 1] >= 0x90, "accepted an overlong four-byte form") }
        }
    }

    private static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    TargetFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
