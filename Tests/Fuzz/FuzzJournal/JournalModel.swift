import Foundation
import FuzzSupport
@testable import Gateway

/// A journal file built from choices, so that readable records (whose checksums a fuzzer would
/// rarely hit by mutation) and their spelling variants reach `parse` and `replay`: the header
/// or another first line, then records of any kind, bytes and time, written canonically or with
/// extra spaces, a signed or zero-padded time, padding or spare bits in the base64url, a wrong
/// or upper-case checksum, CRLF, empty and garbage lines, and a last line torn or not.
enum JournalModel {
    static func build(_ rest: UnsafeRawBufferPointer) -> [UInt8] {
        var c = FuzzChoices(rest, count: rest.count)
        var out = ""
        switch c.byte() % 8 {
        case 6: out = "# gateway revocation journal v2\n"
        case 7: out = RevocationJournal.header + "\r\n"
        default: out = RevocationJournal.header + "\n"
        }
        for _ in 0..<Int(c.byte() % 10) {
            let shape = c.byte()
            let kind = ["jti", "sub", "lid", "jti", "sub", "lid", "JTI", "jti2"][Int(shape % 8)]
            let bytes = (0..<Int(c.byte() % 14)).map { _ in c.byte() }
            let t = c.byte()
            let until: Int64 = t < 200 ? JournalFuzz.now + Int64(Int8(bitPattern: t)) * 7 : [Int64.max, .min, 0, -1, 1][Int(t) % 5]
            let variant = c.byte()
            var b64 = JournalFuzz.foundationEncode(bytes)
            if variant % 16 == 1 { b64 += "=" }
            if variant % 16 == 2, let last = b64.last, let i = "AQgw".firstIndex(of: last) {
                b64 = String(b64.dropLast()) + String("BRhx"[i])  // spare bits set, same bytes for a lenient decoder
            }
            var time = String(until)
            if variant % 16 == 3 { time = (until >= 0 ? "+" : "") + time }
            if variant % 16 == 4 { time = until >= 0 ? "00" + time : "-00" + time.dropFirst() }
            if variant % 16 == 5 && until == 0 { time = "-0" }
            var checksum = JournalFuzz.fnv(Array("\(kind) \(b64) \(time)".utf8))
            if variant % 16 == 6 { checksum = checksum.uppercased() }
            if variant % 16 == 7 { checksum = String(checksum.dropLast()) + (checksum.last == "0" ? "1" : "0") }
            let gap = variant >> 4 == 1 ? "  " : " "
            var line = [kind, b64, time, checksum].joined(separator: gap)
            if variant >> 4 == 2 { line = " " + line }
            if variant >> 4 == 3 { line += " " }
            switch shape >> 3 {
            case 1: out += line + "\r\n"
            case 2: out += "\n"
            case 3: out += "garbage \u{1}\r\n"
            default: out += line + "\n"
            }
        }
        if c.byte() % 4 == 1 { out += "jti " + JournalFuzz.foundationEncode([7]) + " 5" }  // torn
        return Array(out.utf8)
    }
}
