/// The head of a forwarded answer as an HTTP/1.1 client gets it: the upstream's status line
/// and end-to-end fields, then the framing and connection lines this client's connection needs.
/// A pure function over a buffer, so the fuzz target checks that what it writes parses back.
enum HTTP1AnswerHead {
    /// The Connection line the answer carries.
    enum ConnectionField {
        /// None: HTTP/1.1 keeps the connection by default.
        case none
        /// `keep-alive`, for an HTTP/1.0 client that asked for it.
        case keepAlive
        /// `close`: the connection ends after this answer.
        case close
    }

    /// Appends the head, whole or not at all: false (and `out` unchanged) when it does not fit.
    /// `chunked` frames a body of unknown length as chunks (HTTP/1.1 clients only).
    static func write(_ head: ForwardedResponseHead, chunked: Bool, connection: ConnectionField,
                      into out: inout ByteBuffer) -> Bool {
        var w = HeadWriter(into: out)
        w.append("HTTP/1.1")
        w.append(head.statusText)
        w.append("\r\n")
        head.forEachField { name, value in w.field(name, value) }
        switch head.body {
        case let .length(n):
            w.append("Content-Length: ")
            w.append(decimal: n)
            w.append("\r\n")
        case .unknown:
            if chunked { w.append("Transfer-Encoding: chunked\r\n") }
        case .none:
            break
        }
        switch connection {
        case .none: break
        case .keepAlive: w.append("Connection: keep-alive\r\n")
        case .close: w.append("Connection: close\r\n")
        }
        w.append("\r\n")
        guard let written = w.finish() else { return false }
        out = written
        return true
    }
}
