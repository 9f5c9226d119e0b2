/// Incremental decoder of the chunked transfer coding (RFC 9112 section 7.1).
///
/// Framing bytes are consumed one at a time into a small state, so input may be split anywhere
/// (down to one byte per call); chunk data is handed back as offsets into the caller's buffer,
/// never copied. Strict on purpose, since a body framed differently by the gateway and the
/// upstream is request smuggling: the size is 1-15 hex digits followed directly by `;` or CR,
/// every line ends in CRLF, extensions and trailer fields are bounded and then dropped.
struct ChunkedDecoder {
    enum Step: Equatable {
        /// The next piece of chunk data (possibly part of a chunk); call again after consuming it.
        case data(ByteRange)
        /// Every byte up to the returned offset was consumed; feed more later.
        case needMore
        /// The last chunk and trailer section ended; the offset is just after the final CRLF.
        case done
        /// Malformed framing: the caller answers 400.
        case error
    }

    private enum State: UInt8 {
        case size, sizeExtension, sizeLF
        case data, dataCR, dataLF
        case trailerLineStart, trailerName, trailerValue, trailerLF, finalLF
        case done, failed
    }

    static let maxSizeDigits = 15
    static let maxExtensionBytes = 1024

    let maxTrailerBytes: Int
    private var state = State.size
    private var sizeDigits = 0
    /// The size being read, then what is left of the chunk's data.
    private var remaining: Int64 = 0
    private var extensionBytes = 0
    private var trailerBytes = 0

    init(maxTrailerBytes: Int = 8192) {
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// True once the last chunk and trailers have been read.
    var isDone: Bool { state == .done }

    /// Consumes from `buffer` starting at `offset`; returns the next step and the new offset.
    mutating func next(_ buffer: UnsafeRawBufferPointer, from offset: Int) -> (Step, Int) {
        typealias B = HTTPBytes
        let n = buffer.count
        var i = offset
        while true {
            switch state {
            case .done:
                return (.done, i)
            case .failed:
                return (.error, i)
            case .data:
                guard i < n else { return (.needMore, i) }
                let take = Int(min(Int64(n - i), remaining))
                remaining -= Int64(take)
                if remaining == 0 { state = .dataCR }
                return (.data(ByteRange(start: i, end: i + take)), i + take)
            default:
                break
            }
            guard i < n else { return (.needMore, i) }
            let b = buffer[i]
            i += 1

            switch state {
            case .size:
                if let digit = B.hexValue(b) {
                    guard sizeDigits < Self.maxSizeDigits else { return fail(i - 1) }
                    remaining = remaining << 4 | Int64(digit)
                    sizeDigits += 1
                } else if sizeDigits == 0 {
                    return fail(i - 1)
                } else if b == B.semicolon {
                    extensionBytes = 0
                    state = .sizeExtension
                } else if b == B.cr {
                    state = .sizeLF
                } else {
                    return fail(i - 1)
                }
            case .sizeExtension:
                if b == B.cr {
                    state = .sizeLF
                } else if b == B.htab || (b >= 0x20 && b < 0x7F) {
                    extensionBytes += 1
                    guard extensionBytes <= Self.maxExtensionBytes else { return fail(i - 1) }
                } else {
                    return fail(i - 1)
                }
            case .sizeLF:
                guard b == B.lf else { return fail(i - 1) }
                sizeDigits = 0
                if remaining == 0 {
                    trailerBytes = 0
                    state = .trailerLineStart
                } else {
                    state = .data
                }
            case .dataCR:
                guard b == B.cr else { return fail(i - 1) }
                state = .dataLF
            case .dataLF:
                guard b == B.lf else { return fail(i - 1) }
                state = .size
            case .trailerLineStart, .trailerName, .trailerValue, .trailerLF, .finalLF:
                trailerBytes += 1
                guard trailerBytes <= maxTrailerBytes else { return fail(i - 1) }
                switch state {
                case .trailerLineStart:
                    if b == B.cr { state = .finalLF }
                    else if B.isTchar(b) { state = .trailerName }
                    else { return fail(i - 1) }  // obs-fold, bare LF, empty name
                case .trailerName:
                    if b == B.colon { state = .trailerValue }
                    else if !B.isTchar(b) { return fail(i - 1) }
                case .trailerValue:
                    if b == B.cr { state = .trailerLF }
                    else if !B.isFieldValueByte(b) { return fail(i - 1) }
                case .trailerLF:
                    guard b == B.lf else { return fail(i - 1) }
                    state = .trailerLineStart
                default:  // .finalLF
                    guard b == B.lf else { return fail(i - 1) }
                    state = .done
                    return (.done, i)
                }
            case .data, .done, .failed:
                fatalError("unreachable: handled before reading a byte")
            }
        }
    }

    private mutating func fail(_ at: Int) -> (Step, Int) {
        state = .failed
        return (.error, at)
    }
}
