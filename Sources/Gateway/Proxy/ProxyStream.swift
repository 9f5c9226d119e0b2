/// The client side of one proxied exchange, as the proxy sees it: a request body to take and an
/// answer to give. The proxy (ProxyExchange.swift) drives the upstream connection and calls only
/// this; it never touches a client socket or the client's wire format.
///
/// An HTTP/1.1 connection implements it over its plaintext buffers (HTTP1ProxyStream.swift),
/// whatever carries those bytes (plain TCP or TLS, Transport.swift). An HTTP/2 stream would
/// implement it over nghttp2's session callbacks: DATA frames feed `moveRequestBody`,
/// `writeResponseHead` becomes `nghttp2_submit_response`, and a data provider reads the body the
/// proxy writes through `withResponseBuffer` with `responseChunked` false.
protocol ProxyStream: AnyObject {
    /// Moves request body bytes the client has sent into `out`, framed as the rewritten head
    /// announced to the upstream, advancing `exchange`'s request body; `.done` once it is all in.
    func moveRequestBody(into out: inout ByteBuffer, exchange: inout ExchangeState) -> ChunkedRelay.Outcome

    /// The request was HEAD (the answer has no body whatever its fields say).
    var requestWasHEAD: Bool { get }

    /// Hands over the answer's head, whole or not at all: `.noRoomYet` while earlier bytes hold
    /// the room it needs (the proxy tries again once `streamHasRoom` is called), `.tooLarge` when
    /// it cannot be written even then.
    func writeResponseHead(_ head: ForwardedResponseHead, for exchange: UpstreamConnection) -> ResponseHeadOutcome

    /// Lends the buffer the answer's body bytes go into, for `body` to write in place.
    func withResponseBuffer<R>(_ body: (inout ByteBuffer) -> R) -> R
    /// The body goes into `responseBuffer` with chunked framing (an HTTP/1.1 answer of unknown
    /// length); decided by `writeResponseHead`.
    var responseChunked: Bool { get }
    /// Room for more of the answer; false stops reading the upstream (backpressure).
    var canTakeResponse: Bool { get }
    /// Pushes what the answer has so far toward the client; false when the client is gone.
    func sendResponse() -> Bool

    /// The whole answer was handed over; `bodyBytes` of body among it. `unsentBody` is the rest
    /// of a request body the upstream answered before it had all been sent: the client side
    /// drops it (never reading it as a request) or ends the connection.
    func exchangeFinished(bodyBytes: Int64, unsentBody: BodyDiscard?)
    /// The exchange failed before its answer began: the client gets `response` instead.
    func exchangeFailed(_ response: GatewayResponse, requestComplete: Bool)
    /// The request's body broke a rule (malformed framing, over the limit): answer and close.
    func requestBodyRefused(_ response: GatewayResponse)
    /// The exchange broke after its answer began: the client side is cut, `why` goes to its log line.
    func exchangeAborted(_ why: StaticString)
    /// The one retry moved the exchange to a fresh upstream connection.
    func exchangeMoved(to exchange: UpstreamConnection)

    /// The exchange now waits for `wait`: the stream's deadline moves to its timeout.
    func exchangeWaits(_ wait: ExchangeWait)
    /// Bytes moved: a slow but moving exchange is not timed out.
    func exchangeProgressed()
    /// An upstream event was handled: the stream updates what it waits for.
    func exchangeEventHandled()
}

/// A client side that can become a tunnel (HTTP/1.1's `Upgrade`; an HTTP/2 stream has no
/// upgrades and does not adopt it). The exchange asks for it only for a request that asked to
/// upgrade, when the upstream answers 101.
protocol UpgradableStream: ProxyStream {
    /// The upstream accepted the upgrade (101, its head `headLength` bytes at the front of the
    /// exchange's input): from now on bytes pass both ways as they are, through `tunnelEvent`.
    func upgradeAccepted(_ exchange: UpstreamConnection, headLength: Int)
    func tunnelEvent(_ exchange: UpstreamConnection, _ events: IOEvents)
}

/// Whether an answer's head was handed to the client side.
enum ResponseHeadOutcome {
    case written
    case noRoomYet
    case tooLarge
}

/// What an exchange is waiting for, each with its own timeout (`server.*_timeout`).
enum ExchangeWait {
    case connect
    case response
    case body
}

/// An upstream answer's head as the client side gets it: the status, its end-to-end fields and
/// what is known of the body's length. Hop-by-hop fields, those the upstream's `Connection` lists
/// and its framing fields are left out: each client protocol frames the body its own way.
struct ForwardedResponseHead {
    enum Body: Equatable {
        /// No body follows (HEAD, 1xx, 204, 304).
        case none
        case length(Int64)
        /// Chunked or delimited by the upstream closing: not known in advance.
        case unknown
    }

    let status: Int
    /// The status line after the version, e.g. ` 200 OK` (HTTP/1.1 writes it back as it came).
    let statusText: UnsafeRawBufferPointer
    let body: Body
    /// The upstream head's size on the wire: the forwarded fields take no more.
    let headLength: Int
    private let buffer: UnsafeRawBufferPointer
    private let fields: UnsafeMutablePointer<HeaderField>
    private let fieldCount: Int

    init(_ head: ResponseHead, body: Body, buffer: UnsafeRawBufferPointer, fields: UnsafeMutablePointer<HeaderField>) {
        status = head.status
        self.body = body
        headLength = head.headLength
        self.buffer = buffer
        self.fields = fields
        fieldCount = head.fieldCount
        var lineEnd = 0
        while lineEnd + 1 < buffer.count && !(buffer[lineEnd] == 0x0D && buffer[lineEnd + 1] == 0x0A) { lineEnd += 1 }
        statusText = UnsafeRawBufferPointer(rebasing: buffer[min(8, lineEnd)..<lineEnd])
    }

    /// Calls `body` with each forwarded field's name and value, in the upstream's order.
    func forEachField(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        let listed = ConnectionOptions(buffer: buffer, fields: fields, fieldCount: fieldCount)
        for i in 0..<fieldCount {
            let name = field(fields[i].name)
            switch HeaderName.classify(name) {
            case .hopByHop, .upgrade:
                continue
            case .framing:
                // Kept as sent only where no body follows (HEAD, 304): it describes another answer.
                // Never on a 204, which has no body to describe (RFC 9110 §8.6).
                if self.body == .none, status != 204, HeaderName.equals(name, "content-length") {} else { continue }
            default:
                if listed.names(name) { continue }
            }
            body(name, field(fields[i].value))
        }
    }

    @inline(__always)
    private func field(_ r: ByteRange) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[r.start..<r.end])
    }
}
