import CGatewayShims
import Glibc

/// The limits an HTTP/2 server session is made with (from `server.http2_*` and `limits.*`).
struct HTTP2SessionSettings {
    var maxConcurrentStreams: UInt32 = 128
    /// SETTINGS_MAX_HEADER_LIST_SIZE, as sent; the connection also enforces it (431).
    var maxHeaderListSize: UInt32 = 32_768
    /// The receive window of the whole connection: the most request body bytes held for it.
    var connectionWindow: Int32 = 1 << 20
    /// A stream's receive window: at most a large buffer, which holds what is not yet sent on.
    var streamWindow: UInt32 = 65_535
}

/// One nghttp2 server session, fed and drained in memory: the connection reads bytes from its
/// socket and passes them to `receive`, and writes what `nextOutput` lends; nghttp2 does the
/// framing, HPACK, flow control and the RFC 9113 §8 checks, and never touches a socket. Its
/// callbacks reach the `HTTP2Connection` that owns it, on that connection's loop thread.
///
/// Abuse limits set here: rapid reset (CVE-2023-44487) by nghttp2's stream reset rate limit as a
/// backstop behind the connection's own (ENHANCE_YOUR_CALM); CONTINUATION floods by `max_continuations`; SETTINGS and PING floods by
/// `max_settings` and `max_outbound_ack`; window updates are the connection's to give, as the
/// upstream takes the body (no automatic WINDOW_UPDATE).
final class HTTP2Session {
    let session: OpaquePointer

    /// nil when nghttp2 cannot allocate a session.
    init?(owner: HTTP2Connection, settings: HTTP2SessionSettings) {
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let cbs = callbacks else { return nil }
        defer { nghttp2_session_callbacks_del(cbs) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(cbs, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameReceived)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamClose)

        var opt: OpaquePointer?
        guard nghttp2_option_new(&opt) == 0, let option = opt else { return nil }
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_max_outbound_ack(option, 1000)
        nghttp2_option_set_max_settings(option, 32)
        nghttp2_option_set_max_continuations(option, 8)
        nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33)
        nghttp2_option_set_max_send_header_block_length(option, 65_536)
        // Closed streams are not kept for RFC 7540's priority tree. (SETTINGS_NO_RFC7540_PRIORITIES
        // is not sent: under RFC 9218 nghttp2 sends a stream without a `priority` field whole
        // before the next, where the tree shares the connection among streams.)
        nghttp2_option_set_no_closed_streams(option, 1)

        var made: OpaquePointer?
        let user = Unmanaged.passUnretained(owner).toOpaque()
        guard nghttp2_session_server_new2(&made, cbs, user, option) == 0, let s = made else { return nil }
        session = s

        var iv = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: settings.maxHeaderListSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.streamWindow),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            // RFC 8441: WebSocket over a stream (extended CONNECT with :protocol).
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL.rawValue), value: 1),
        ]
        guard nghttp2_submit_settings(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), &iv, iv.count) == 0,
              nghttp2_session_set_local_window_size(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, settings.connectionWindow) == 0 else {
            nghttp2_session_del(s)
            return nil
        }
    }

    deinit { nghttp2_session_del(session) }

    /// Passes received bytes in; the error code of the GOAWAY that ends the connection, or nil
    /// while it goes on. A flood (of SETTINGS or PING acks owed, of CONTINUATION frames) ends it
    /// with ENHANCE_YOUR_CALM, any other connection error with PROTOCOL_ERROR; `nextOutput`
    /// still lends the GOAWAY.
    func receive(_ bytes: UnsafeRawBufferPointer) -> nghttp2_error_code? {
        guard bytes.count > 0 else { return nil }
        let n = nghttp2_session_mem_recv(session, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
        guard n < 0 else { return nil }
        let flood = n == Int(NGHTTP2_ERR_FLOODED.rawValue) || n == Int(NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue)
        let code = flood ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR
        terminate(code)
        return code
    }

    /// GOAWAY with `code`; once it is sent the session wants nothing more.
    func terminate(_ code: nghttp2_error_code) {
        _ = nghttp2_session_terminate_session(session, code.rawValue)
    }

    /// The next bytes to send, valid until the next call; nil when there are none (or on an
    /// error, `failed` then set).
    func nextOutput(failed: inout Bool) -> UnsafeRawBufferPointer? {
        var data: UnsafePointer<UInt8>?
        let n = nghttp2_session_mem_send(session, &data)
        if n < 0 { failed = true; return nil }
        guard n > 0, let data else { return nil }
        return UnsafeRawBufferPointer(start: data, count: n)
    }

    /// Neither side has anything more to say: the connection can close.
    var isDone: Bool { nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 }

    /// The response head (and a body through the connection's data source unless `endStream`).
    func submitResponse(_ stream: Int32, _ nva: UnsafePointer<nghttp2_nv>, count: Int, endStream: Bool) -> Bool {
        if endStream { return nghttp2_submit_response(session, stream, nva, count, nil) == 0 }
        var provider = nghttp2_data_provider()
        provider.source.ptr = nil
        provider.read_callback = readAnswerBody
        return nghttp2_submit_response(session, stream, nva, count, &provider) == 0
    }

    /// A non-final `100 Continue` head.
    func submitContinue(_ stream: Int32) {
        ":status".withCString { n in "100".withCString { v in
            var nv = nghttp2_nv(name: UnsafeMutableRawPointer(mutating: n).assumingMemoryBound(to: UInt8.self),
                                value: UnsafeMutableRawPointer(mutating: v).assumingMemoryBound(to: UInt8.self),
                                namelen: 7, valuelen: 3, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
            _ = nghttp2_submit_headers(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, nil, &nv, 1, nil)
        } }
    }

    /// More of a deferred answer body is ready.
    func resumeData(_ stream: Int32) { _ = nghttp2_session_resume_data(session, stream) }

    /// Ends a stream with RST_STREAM `code`.
    func reset(_ stream: Int32, _ code: nghttp2_error_code) {
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, code.rawValue)
    }

    /// `n` request body bytes of `stream` were taken: the client may send as many more.
    func consume(_ stream: Int32, _ n: Int) {
        guard n > 0 else { return }
        _ = nghttp2_session_consume(session, stream, n)
    }

    /// GOAWAY with the last stream this side has seen: open streams finish, no new ones start.
    func goAway(_ code: nghttp2_error_code = NGHTTP2_NO_ERROR) {
        _ = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
                                  code.rawValue, nil, 0)
    }
}

// MARK: callbacks (C function pointers: no captures; the owner comes back through user_data)

@inline(__always)
private func owner(_ user: UnsafeMutableRawPointer?) -> HTTP2Connection {
    Unmanaged<HTTP2Connection>.fromOpaque(user!).takeUnretainedValue()
}

private let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, user in
    guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
          frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }
    owner(user).streamBegins(frame.pointee.hd.stream_id)
    return 0
}

private let onHeader: nghttp2_on_header_callback = { _, frame, name, namelen, value, valuelen, _, user in
    guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
          frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }  // trailers are dropped
    owner(user).streamHeader(frame.pointee.hd.stream_id,
                             name: UnsafeRawBufferPointer(start: name, count: namelen),
                             value: UnsafeRawBufferPointer(start: value, count: valuelen))
    return 0
}

private let onFrameReceived: nghttp2_on_frame_recv_callback = { _, frame, user in
    guard let frame else { return 0 }
    let id = frame.pointee.hd.stream_id
    let endStream = frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
    switch UInt32(frame.pointee.hd.type) {
    case NGHTTP2_HEADERS.rawValue:
        if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
            owner(user).streamHeadersEnded(id, endStream: endStream)
        } else if endStream {
            owner(user).streamRequestEnded(id)
        }
    case NGHTTP2_DATA.rawValue:
        if endStream { owner(user).streamRequestEnded(id) }
    case NGHTTP2_RST_STREAM.rawValue:
        owner(user).streamResetByClient()
    default:
        break
    }
    return 0
}

private let onDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, id, data, len, user in
    owner(user).streamData(id, UnsafeRawBufferPointer(start: data, count: len))
    return 0
}

private let onStreamClose: nghttp2_on_stream_close_callback = { _, id, code, user in
    owner(user).streamClosed(id, errorCode: code)
    return 0
}

private let readAnswerBody: nghttp2_data_source_read_callback = { _, id, buf, length, flags, _, user in
    let (n, eof) = owner(user).streamAnswerBody(id, into: UnsafeMutableRawBufferPointer(start: buf, count: length))
    if n < 0 { return Int(NGHTTP2_ERR_DEFERRED.rawValue) }
    if eof { flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue }
    return n
}
