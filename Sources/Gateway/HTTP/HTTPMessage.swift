/// One header field line as offsets into the parsed buffer; `value` is without surrounding OWS.
struct HeaderField: Equatable {
    var name: ByteRange
    var value: ByteRange
}

enum HTTPVersion: Equatable {
    case http10, http11
}

/// Bounds on a message head; every count and length the parser accepts is bounded by these.
struct HTTPLimits {
    /// Longest request line, without its CRLF.
    var requestLineBytes = 8192
    /// Longest head, start line to the final CRLFCRLF included.
    var headerBytes = 32768
    /// Most field lines; also the capacity the caller gives the `fields` pointer.
    var maxHeaderFields = 100

    /// The largest head a connection's buffer holds whole (`BufferPool.largeSize`): a limit
    /// above it could never be reached and a head would wait forever for room.
    static let maxHeadBytes = 65_536
    /// The size every connection buffer starts with; one that must hold a larger head grows to
    /// `maxHeadBytes`.
    static let bufferBytes = 16_384
}

/// Why a request (or response) head is refused; `status` is what the gateway answers.
enum HTTPParseError: Error, Equatable {
    case badRequest(Reason)
    /// Request line longer than `requestLineBytes`, or more than that buffered without its end.
    case uriTooLong
    /// Head longer than `headerBytes`, or more than `maxHeaderFields` field lines.
    case headersTooLarge
    /// `HTTP/x.y`, well-formed, but neither 1.0 nor 1.1.
    case versionNotSupported
    /// A request Transfer-Encoding other than exactly `chunked`.
    case notImplemented

    enum Reason: Equatable {
        case malformedRequestLine, invalidMethod, invalidTarget
        case obsFold, spaceBeforeColon, invalidHeaderName, invalidHeaderValue
        case missingHost, multipleHosts
        case contentLengthWithTransferEncoding, invalidContentLength
        case transferEncodingInHTTP10
        /// A WebSocket upgrade that also carries a body: after the upgrade the bytes belong to
        /// the new protocol, so one side would read them as a body and the other as a request.
        case upgradeWithBody
        /// Connection names more options than `maxConnectionOptions`.
        case tooManyConnectionOptions
        /// An empty Transfer-Encoding field in a request; any coding but `chunked` in a response.
        case invalidTransferEncoding
        /// A LF without CR before it, or a CR without LF after it.
        case bareLineFeed
        case malformedStatusLine
    }

    var status: Int {
        switch self {
        case .badRequest: return 400
        case .uriTooLong: return 414
        case .headersTooLarge: return 431
        case .versionNotSupported: return 505
        case .notImplemented: return 501
        }
    }
}

/// A parsed request head: offsets into the buffer given to `parseRequestHead`, plus what its
/// fields say about framing and the connection.
struct RequestHead: Equatable {
    var method: ByteRange
    var target: ByteRange
    var version: HTTPVersion
    /// Bytes of the head including the final CRLFCRLF (and any skipped leading empty lines).
    var headLength: Int
    var fieldCount: Int
    /// Nil when absent.
    var contentLength: Int64?
    var chunked: Bool
    /// HTTP/1.1: true unless `Connection: close`; HTTP/1.0: false unless `Connection: keep-alive`.
    var keepAlive: Bool
    /// `Expect: 100-continue` in an HTTP/1.1 request (HTTP/1.0 ones are ignored, RFC 9110 10.1.1).
    var expectContinue: Bool
    /// The single Host value.
    var host: ByteRange?
    /// The value when there is exactly one Authorization field.
    var authorization: ByteRange?
    var authorizationCount: Int
    /// Upgrade lists `websocket` and Connection lists `upgrade`.
    var upgradeWebSocket: Bool
    var isHEAD: Bool
    var isCONNECT: Bool
}

enum RequestParse: Equatable {
    case complete(RequestHead), incomplete, error(HTTPParseError)
}

/// A parsed response head: offsets into the buffer given to `parseResponseHead`.
struct ResponseHead: Equatable {
    var status: Int
    var version: HTTPVersion
    var headLength: Int
    var fieldCount: Int
    var contentLength: Int64?
    var chunked: Bool
    var keepAlive: Bool
    /// Upgrade lists `websocket`.
    var upgradeWebSocket: Bool
}

enum ResponseParse: Equatable {
    case complete(ResponseHead), incomplete, error(HTTPParseError)
}

/// What body follows a response (RFC 9112 section 6.3).
enum ResponseBody: Equatable {
    case none, contentLength(Int64), chunked, untilClose
}

/// The body of a response to a request: none after HEAD and for 1xx, 204 and 304, else as its
/// framing fields say, and until the connection closes when they say nothing.
func responseBody(_ head: ResponseHead, requestWasHEAD: Bool) -> ResponseBody {
    if requestWasHEAD || (head.status >= 100 && head.status < 200) || head.status == 204 || head.status == 304 {
        return .none
    }
    if head.chunked { return .chunked }
    if let length = head.contentLength { return .contentLength(length) }
    return .untilClose
}
