import Glibc

/// How log lines are written: `text` (the gateway's own one-line form) or `json` (one object per
/// line, for log shippers).
enum LogFormat: String, Sendable {
    case text, json
}

/// Pieces of a JSON log line, written straight into a byte buffer: no Foundation, no String
/// formatting, nothing allocated once the buffer has grown.
enum LogLine {
    /// Milliseconds since the Unix epoch, now.
    static func wallClockMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// `{"time":"<RFC 3339 UTC with milliseconds>","level":"<level>","msg":` — the start every
    /// JSON line shares; the caller writes the message and the rest.
    static func open(_ out: inout [UInt8], ms: Int64, level: StaticString) {
        raw(&out, "{\"time\":\"")
        rfc3339(&out, ms: ms)
        raw(&out, "\",\"level\":\"")
        raw(&out, level)
        raw(&out, "\",\"msg\":")
    }

    /// `2026-12-06T12:00:00.123Z` (days to a civil date as in Howard Hinnant's algorithm).
    static func rfc3339(_ out: inout [UInt8], ms: Int64) {
        let secs = ms >= 0 ? ms / 1_000 : (ms - 999) / 1_000
        let millis = Int(ms - secs * 1_000)
        var days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let secOfDay = Int(secs - days * 86_400)
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        let year = Int(yoe + era * 400 + (month <= 2 ? 1 : 0))
        digits(&out, year, width: 4); out.append(UInt8(ascii: "-"))
        digits(&out, month, width: 2); out.append(UInt8(ascii: "-"))
        digits(&out, day, width: 2); out.append(UInt8(ascii: "T"))
        digits(&out, secOfDay / 3_600, width: 2); out.append(UInt8(ascii: ":"))
        digits(&out, secOfDay / 60 % 60, width: 2); out.append(UInt8(ascii: ":"))
        digits(&out, secOfDay % 60, width: 2); out.append(UInt8(ascii: "."))
        digits(&out, millis, width: 3); out.append(UInt8(ascii: "Z"))
    }

    static func digits(_ out: inout [UInt8], _ value: Int, width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var v = max(0, value)
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(v / divisor % 10))
            v %= divisor * 10
            divisor /= 10
        }
    }

    static func decimal(_ out: inout [UInt8], _ value: Int64) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var v = value.magnitude
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: enough for 20 digits
        withUnsafeMutableBytes(of: &scratch) { buf in
            var i = buf.count
            repeat {
                i -= 1
                buf[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            } while v > 0
            out.append(contentsOf: buf[i...])
        }
    }

    /// A JSON string of `bytes`: quotes, backslashes and control characters escaped.
    static func string<Bytes: Sequence>(_ out: inout [UInt8], _ bytes: Bytes) where Bytes.Element == UInt8 {
        let hex: StaticString = "0123456789abcdef"
        out.append(UInt8(ascii: "\""))
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\")); out.append(b)
            case 0x0A: raw(&out, "\\n")
            case 0x0D: raw(&out, "\\r")
            case 0x09: raw(&out, "\\t")
            case 0..<0x20, 0x7F:
                raw(&out, "\\u00")
                out.append(hex.utf8Start[Int(b >> 4)]); out.append(hex.utf8Start[Int(b & 0xF)])
            default:
                out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    static func raw(_ out: inout [UInt8], _ s: StaticString) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// An event line (`msg` as given) in `format`: text lines pass as they are; a message
    /// starting "warning: " is level warn.
    static func event(_ text: String, format: LogFormat, extra: (inout [UInt8]) -> Void = { _ in }) -> [UInt8] {
        var line = Array(text.utf8)
        if line.last == 0x0A { line.removeLast() }
        guard format == .json else { return line + [0x0A] }
        let warning = text.hasPrefix("warning: ")
        var out: [UInt8] = []
        out.reserveCapacity(line.count + 80)
        open(&out, ms: wallClockMs(), level: warning ? "warn" : "info")
        string(&out, warning ? line.dropFirst("warning: ".utf8.count) : line[...])
        extra(&out)
        raw(&out, "}\n")
        return out
    }
}
