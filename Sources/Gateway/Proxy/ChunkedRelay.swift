/// Moves a chunked body from one buffer to another as far as room allows, re-framing it on the
/// way: chunk extensions and trailers are dropped, and the receiving side gets either fresh
/// chunked framing or the bare data (an HTTP/1.0 client). One mechanism for both directions.
enum ChunkedRelay {
    enum Outcome: Equatable {
        /// Moved what it could; more input or more room is needed.
        case progress
        /// The last chunk and the trailers have been read (and `0\r\n\r\n` written if re-framing).
        case done
        /// Malformed framing.
        case malformed
        /// The data would pass `limit`.
        case tooLarge
    }

    /// Relays from `input` to `output`; `moved` counts data bytes (not framing) and is checked
    /// against `limit`.
    static func relay(from input: inout ByteBuffer, to output: inout ByteBuffer, decoder: inout ChunkedDecoder,
                      reframe: Bool, moved: inout Int64, limit: Int64 = .max) -> Outcome {
        while true {
            // Room for the largest chunk-size line and CRLFs around what is handed out.
            let room = output.writableBytes - 32
            guard room > 0 else { return .progress }
            let view = UnsafeRawBufferPointer(start: input.base + input.readerIndex, count: min(input.readableBytes, room))
            let (step, offset) = decoder.next(view, from: 0)
            switch step {
            case let .data(r):
                moved += Int64(r.count)
                if moved > limit { return .tooLarge }
                if reframe {
                    precondition(output.append(hex: r.count), "chunk-size line within the reserve")
                    output.appendWithinRoom("\r\n")
                }
                output.appendWithinRoom(UnsafeRawBufferPointer(rebasing: view[r.start..<r.end]))
                if reframe { output.appendWithinRoom("\r\n") }
                input.consume(offset)
            case .needMore:
                input.consume(offset)
                return .progress
            case .done:
                if reframe { output.appendWithinRoom("0\r\n\r\n") }
                input.consume(offset)
                return .done
            case .error:
                return .malformed
            }
        }
    }
}
