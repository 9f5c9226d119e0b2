import CGatewayShims
import Glibc

/// A server certificate and key loaded into an OpenSSL context: TLS 1.2 or later, no
/// renegotiation, ALPN `h2` (when HTTP/2 is on) then `http/1.1`. Shared by every worker (OpenSSL allows concurrent `SSL_new`
/// on one context); a reload builds a new one, so certificates rotate without a restart while
/// open connections keep the one they started with.
final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer

    init(certFile: String, keyFile: String, tls13Only: Bool, offerHTTP2: Bool) throws {
        if let problem = FileTrust.problem(keyFile) { throw StartupError("tls.key_file refused: \(problem)") }
        var err = [CChar](repeating: 0, count: 512)
        guard let ctx = gw_tls_server_ctx_new(certFile, keyFile, tls13Only ? 1 : 0, offerHTTP2 ? 1 : 0, &err, err.count) else {
            throw StartupError("tls: \(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        context = ctx
    }

    deinit { gw_tls_ctx_free(context) }
}

/// Trust for connections the gateway makes (HTTPS upstreams, an identity provider's keys): TLS
/// 1.2 or later, the peer's chain verified against a CA file, or the system's store. Shared by
/// every worker, as `TLSContext`.
final class TLSClientContext: @unchecked Sendable {
    let context: OpaquePointer

    /// `caFile` nil: the system's store.
    init(caFile: String?) throws {
        var err = [CChar](repeating: 0, count: 512)
        guard let ctx = gw_tls_client_ctx_new(caFile, &err, err.count) else {
            throw StartupError("tls client: \(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        context = ctx
    }

    deinit { gw_tls_ctx_free(context) }
}

extension TLSClientContext {
    /// The trust a `ca_file` setting names ("" for the system's store), refused unless the file
    /// passes `FileTrust`: whoever can write it chooses whom the gateway trusts. Errors name
    /// `setting` (where in the configuration it was said).
    static func forCAFile(_ caFile: String, setting: String) throws -> TLSClientContext {
        if !caFile.isEmpty, let problem = FileTrust.problem(caFile) { throw StartupError("\(setting): ca_file refused: \(problem)") }
        do {
            return try TLSClientContext(caFile: caFile.isEmpty ? nil : caFile)
        } catch {
            throw StartupError("\(setting): ca_file \(caFile.isEmpty ? "(the system's store)" : caFile): \(error)")
        }
    }
}

/// One client connection's TLS session over memory BIOs: ciphertext read from the socket is fed
/// in, plaintext comes out into the connection's input buffer; plaintext from its output buffer
/// goes in, and the ciphertext waiting in the session is sent as far as the socket takes it.
/// The loop does every socket call itself, so nothing here can block.
final class TLSSession {
    private let ssl: OpaquePointer
    private unowned let buffers: BufferPool
    private var closeNotifySent = false

    /// Ciphertext held unsent beyond which writes take no more plaintext (backpressure: the
    /// output buffer then stays full and the upstream stops being read).
    static let maxPendingCiphertext = 64 * 1024

    init?(context: TLSContext, buffers: BufferPool) {
        guard let ssl = gw_tls_session_new(context.context) else { return nil }
        self.ssl = ssl
        self.buffers = buffers
    }

    /// The gateway's side of a connection it makes to `host` (a name, also sent as SNI, or an
    /// address), whose certificate must be for it and chain to `context`'s trust.
    init?(client context: TLSClientContext, host: String, buffers: BufferPool) {
        guard let ssl = gw_tls_client_session_new(context.context, host) else { return nil }
        self.ssl = ssl
        self.buffers = buffers
    }

    deinit { gw_tls_session_free(ssl) }

    /// X509_V_OK (0) once the peer's certificate is accepted, else why it was refused.
    var verifyResult: Int { Int(gw_tls_verify_result(ssl)) }

    /// Why the peer's certificate was refused, in OpenSSL's words; nil when it was not.
    var verifyFailure: String? {
        let result = gw_tls_verify_result(ssl)
        return result == 0 ? nil : String(cString: gw_tls_verify_text(result))
    }

    enum HandshakeProgress { case done, pending, failed }

    /// Advances the handshake as far as the bytes the socket has allow (the gateway's own
    /// connections: they shake hands before the request goes).
    func handshake(_ socket: Socket) -> HandshakeProgress {
        while true {
            switch gw_tls_handshake(ssl) {
            case Int32(GW_TLS_OK):
                return sendPending(socket) ? .done : .failed
            case Int32(GW_TLS_WANT_READ):
                guard sendPending(socket) else { return .failed }
                let scratch = buffers.take()
                defer { buffers.release(scratch) }
                guard let r = try? socket.read(scratch.base, scratch.capacity) else { return .failed }
                switch r {
                case let .bytes(k):
                    guard gw_tls_feed(ssl, scratch.base, k) == 1 else { return .failed }
                case .wouldBlock:
                    return .pending
                case .eof:
                    return .failed
                }
            default:
                _ = sendPending(socket)   // the alert, if any
                return .failed
            }
        }
    }

    /// Decrypts into `buffer`'s free space, reading ciphertext from the socket as the session
    /// asks for it (the handshake happens here, its answers sent on the way).
    func read(_ socket: Socket, into buffer: inout ByteBuffer) -> IOResult? {
        while true {
            var n = 0
            switch gw_tls_read(ssl, buffer.base + buffer.writerIndex, buffer.writableBytes, &n) {
            case Int32(GW_TLS_OK):
                buffer.writerIndex += n
                // Further records already in the session join this read (one SSL_read gives one
                // record): they would come with no readiness event of their own. An error or a
                // close among them is met again by the next read.
                var total = n
                while buffer.writableBytes > 0 && gw_tls_has_buffered_input(ssl) != 0 {
                    var more = 0
                    guard gw_tls_read(ssl, buffer.base + buffer.writerIndex, buffer.writableBytes, &more) == Int32(GW_TLS_OK) else { break }
                    buffer.writerIndex += more
                    total += more
                }
                // TLS 1.3 session tickets and the like go out with the next write or now.
                guard sendPending(socket) else { return nil }
                return .bytes(total)
            case Int32(GW_TLS_WANT_READ):
                guard sendPending(socket) else { return nil }
                let scratch = buffers.take()
                defer { buffers.release(scratch) }
                guard let r = try? socket.read(scratch.base, scratch.capacity) else { return nil }
                switch r {
                case let .bytes(k):
                    guard gw_tls_feed(ssl, scratch.base, k) == 1 else { return nil }
                case .wouldBlock:
                    return .wouldBlock
                case .eof:
                    return .eof
                }
            case Int32(GW_TLS_CLOSED):
                return .eof
            default:
                _ = sendPending(socket)   // the alert, if any
                return nil
            }
        }
    }

    /// Encrypts `buffer`'s readable bytes while the ciphertext waiting stays under
    /// `maxPendingCiphertext`; the number of plaintext bytes taken, nil on an error.
    /// `keepDrained` leaves taken bytes readable below the reader index (see `Socket.writeOut`).
    func write(_ socket: Socket, from buffer: inout ByteBuffer, keepDrained: Bool = false) -> Int? {
        guard sendPending(socket) else { return nil }
        var taken = 0
        while !buffer.isEmpty && pendingCount < Self.maxPendingCiphertext {
            var n = 0
            let status = gw_tls_write(ssl, buffer.base + buffer.readerIndex, buffer.readableBytes, &n)
            guard status == Int32(GW_TLS_OK) else {
                if status == Int32(GW_TLS_WANT_READ) { break }
                return nil
            }
            taken += n
            buffer.readerIndex += n
            if buffer.readerIndex == buffer.writerIndex && !keepDrained {
                buffer.readerIndex = 0
                buffer.writerIndex = 0
            }
            guard sendPending(socket) else { return nil }
        }
        return taken
    }

    /// Sends waiting ciphertext as far as the socket takes it; false on a write error.
    func sendPending(_ socket: Socket) -> Bool {
        while true {
            var data: UnsafeRawPointer?
            let n = gw_tls_pending(ssl, &data)
            guard n > 0, let data else { return true }
            guard let r = try? socket.write(data, n) else { return false }
            guard case let .bytes(k) = r else { return true }
            gw_tls_consume(ssl, k)
        }
    }

    private var pendingCount: Int {
        var data: UnsafeRawPointer?
        return gw_tls_pending(ssl, &data)
    }

    var hasPendingOutput: Bool { pendingCount > 0 }

    var hasBufferedInput: Bool { gw_tls_has_buffered_input(ssl) != 0 }
    var isQuiet: Bool { gw_tls_is_quiet(ssl) != 0 }

    /// Sends close_notify, then ends the socket's sending side once it is out.
    func shutdownWrite(_ socket: Socket) {
        if !closeNotifySent {
            closeNotifySent = true
            gw_tls_shutdown(ssl)
        }
        if sendPending(socket) && !hasPendingOutput { socket.shutdownWrite() }
    }

    /// ALPN chose HTTP/2.
    var negotiatedHTTP2: Bool { gw_tls_alpn_is_h2(ssl) == 1 }

    /// The negotiated version ("TLSv1.3"), for logs.
    var version: String { String(cString: gw_tls_version(ssl)) }
}
