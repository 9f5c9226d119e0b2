/// The rest of a request body that is answered already (the gateway's own answer, or an upstream
/// that answered before the body was sent): read and dropped under its own framing, within a
/// limit, so none of it is ever parsed as the client's next request.
struct BodyDiscard {
    enum Outcome: Equatable {
        /// Dropped what was buffered; the body goes on.
        case needMore
        /// The body has ended; the bytes after it are the next request.
        case done
        /// Malformed chunked framing, or more than the limit: the connection must close.
        case refused
    }

    private(set) var framing: BodyFraming
    /// Body bytes seen so far (sent upstream before, and dropped here).
    private(set) var dropped: Int64
    let limit: Int64

    init(_ framing: BodyFraming, alreadySeen: Int64 = 0, limit: Int64) {
        self.framing = framing
        dropped = alreadySeen
        self.limit = limit
    }

    /// Drops body bytes from the front of `input`.
    mutating func drop(from input: inout ByteBuffer) -> Outcome {
        switch framing {
        case .none, .untilClose:
            return .done
        case let .length(remaining):
            let n = Int(min(remaining, Int64(input.readableBytes)))
            input.consume(n)
            dropped += Int64(n)
            framing = .length(remaining - Int64(n))
            if dropped > limit { return .refused }
            return remaining == Int64(n) ? .done : .needMore
        case var .chunked(decoder):
            defer { framing = .chunked(decoder) }
            while true {
                let (step, offset) = decoder.next(input.readable, from: 0)
                input.consume(offset)
                switch step {
                case let .data(r):
                    dropped += Int64(r.count)
                    if dropped > limit { return .refused }
                case .needMore: return .needMore
                case .done: return .done
                case .error: return .refused
                }
            }
        }
    }
}
