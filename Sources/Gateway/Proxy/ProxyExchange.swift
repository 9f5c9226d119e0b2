import CGatewayShims
import Glibc
import TokenCore

/// The proxy step of a client connection: route, check the bearer token, rewrite the head, send
/// it to a pooled upstream connection of the same loop, then stream both bodies with backpressure
/// (a side stops being read while the other cannot take more) and relay the answer.
extension ClientConnection {
    /// Handles one parsed request head; false (stop taking pipelined requests for now) unless
    /// it was answered at once and the next one may be read.
    func startRequest(_ head: RequestHead) -> Bool {
        guard let inp = input else { return false }
        let buf = inp.readable
        keepAlive = head.keepAlive && !worker.draining
        requestIsHEAD = head.isHEAD
        envelopeErrors = false
        logLine.enabled = config.log.access
        logLine.reset()
        logLine.method(UnsafeRawBufferPointer(rebasing: buf[head.method.start..<head.method.end]))
        let target = UnsafeRawBufferPointer(rebasing: buf[head.target.start..<head.target.end])
        logLine.path(target)

        if head.isCONNECT {
            respondAndClose(.badRequest)
            return false
        }
        let pathLength: Int
        do {
            pathLength = try Router.checkTarget(target)
        } catch {
            respondLocally(.badRequest, head: head)
            return isAwaitingHead
        }
        let path = UnsafeRawBufferPointer(rebasing: target[0..<pathLength])
        if HeaderName.equals(path, "/healthz") {
            respondLocally(bytes: AdminResponses.healthy, status: 200, head: head)
            return isAwaitingHead
        }
        if HeaderName.equals(path, "/readyz") {
            let ready = snapshot.readiness?.isReady ?? true
            respondLocally(bytes: ready ? AdminResponses.ready : AdminResponses.notReady(snapshot.readiness?.problems ?? []),
                           status: ready ? 200 : 503, head: head)
            return isAwaitingHead
        }
        if let answered = handleOwnEndpoint(path, head: head, buffer: buf) { return answered }
        guard let routeIndex = Router.match(path, routes: snapshot.routes) else {
            respondLocally(.notFound, head: head)
            return isAwaitingHead
        }
        let route = snapshot.routes[routeIndex]
        envelopeErrors = route.envelopeErrors

        var subject: UnsafeRawBufferPointer?
        tokenExpiresAt = 0
        tunnelIdentity = nil
        if route.authRequired {
            switch worker.checkBearer(head, buffer: buf, snapshot: snapshot) {
            case let .success(v):
                let s = v.subject
                subject = s
                logLine.user(s)
                if route.closeOnExpiry {
                    tokenExpiresAt = v.expiresAt
                    if head.upgradeWebSocket {
                        tunnelIdentity = TunnelIdentity(subject: Array(v.subject), tokenID: Array(v.tokenID),
                                                        loginID: Array(v.loginID), issuedAt: v.issuedAt)
                    }
                }
            case let .failure(rule):
                logLine.rule = rule
                respondLocally(.unauthorized, head: head)
                return isAwaitingHead
            }
        }
        if let length = head.contentLength, length > route.maxBodyBytes {
            respondAndClose(.payloadTooLarge)
            return false
        }

        let pool = worker.pool(route.upstreamIndex)
        let u: UpstreamConnection
        do {
            u = try pool.acquire()
        } catch {
            respondLocally(.badGateway, head: head)
            return isAwaitingHead
        }
        u.beginExchange(client: self)
        if u.input == nil { u.input = worker.buffers.take() }
        if u.output == nil { u.output = worker.buffers.take() }
        u.tunnelRequested = head.upgradeWebSocket
        u.chunkedToClient = head.version == .http11
        u.maxRequestBody = route.maxBodyBytes
        let rewritten = RequestRewriter.write(
            .init(buffer: buf, head: head, fields: worker.requestFields, forwardAuthorization: route.forwardAuthorization,
                  subject: subject, peer: peer, tunnel: head.upgradeWebSocket),
            into: &u.output!, requestID: { self.worker.appendRequestID(&$0, log: &self.logLine) })
        guard rewritten else {
            pool.close(u)
            respondAndClose(.headersTooLarge)
            return false
        }
        if head.chunked {
            u.requestBody = .chunked(ChunkedDecoder())
        } else if let length = head.contentLength, length > 0 {
            u.requestBody = .length(length)
        } else {
            u.requestBody = .none
            u.requestComplete = true
            if u.reused && Self.isIdempotent(UnsafeRawBufferPointer(rebasing: buf[head.method.start..<head.method.end])) {
                u.requestHeadLength = u.output!.writerIndex
            }
        }
        consumeInput(head.headLength)
        state = .proxying(u)
        if head.expectContinue && !u.requestComplete && (input?.isEmpty ?? true) {
            _ = appendOutput(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        pumpRequestBody(u)
        if case .proxying = state {} else { return false }
        if u.phase != .connecting && !u.flush() {
            upstreamFailed(u)
            return false
        }
        let wait = u.phase == .connecting ? config.server.connectTimeoutMs : (u.requestComplete ? config.server.responseTimeoutMs : config.server.bodyTimeoutMs)
        setDeadline(worker.loop.now + UInt64(wait), keepIfEarlier: false)
        if !(output?.isEmpty ?? true) { _ = flush() }
        updateUpstreamInterest(u)
        return false
    }

    var isAwaitingHead: Bool {
        if case .awaitingHead = state { return true }
        return false
    }

    static func isIdempotent(_ method: UnsafeRawBufferPointer) -> Bool {
        method.elementsEqual("GET".utf8) || method.elementsEqual("HEAD".utf8) || method.elementsEqual("OPTIONS".utf8)
    }

    // MARK: request body

    /// Moves request body bytes from the client's input to the upstream's output, re-framing
    /// chunked bodies (extensions and trailers dropped) and enforcing the route's body limit.
    func pumpRequestBody(_ u: UpstreamConnection) {
        guard !u.requestComplete, var inp = input, var out = u.output else { return }
        var failed: GatewayResponse?
        switch u.requestBody {
        case let .length(remaining):
            let n = Int(min(remaining, Int64(min(inp.readableBytes, out.writableBytes))))
            if n > 0 {
                out.append(UnsafeRawBufferPointer(start: inp.base + inp.readerIndex, count: n))
                inp.consume(n)
            }
            u.requestBody = .length(remaining - Int64(n))
            if remaining - Int64(n) == 0 { u.requestComplete = true }
        case var .chunked(decoder):
            switch ChunkedRelay.relay(from: &inp, to: &out, decoder: &decoder, reframe: true,
                                      moved: &u.requestBodyBytes, limit: u.maxRequestBody) {
            case .progress: break
            case .done: u.requestComplete = true
            case .malformed: failed = .badRequest
            case .tooLarge: failed = .payloadTooLarge
            }
            u.requestBody = .chunked(decoder)
        case .none, .untilClose:
            u.requestComplete = true
        }
        input = inp
        u.output = out
        if let failed {
            u.pool.close(u)
            if !u.responseStarted { respondAndClose(failed) } else { close() }
        }
    }

    // MARK: upstream events

    func upstreamEvent(_ u: UpstreamConnection, _ events: UInt32) {
        if case .tunnel = state {
            if events & UInt32(EPOLLOUT.rawValue) != 0 { _ = u.flush() }
            tunnelUpstreamToClient(u)
            updateInterest()
            return
        }
        if u.phase == .connecting {
            if events & UInt32(EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 || Socket.pendingError(u.fd) != 0 {
                upstreamFailed(u)
                updateInterest()
                return
            }
            u.phase = .active
            setDeadline(worker.loop.now + UInt64(u.requestComplete ? config.server.responseTimeoutMs : config.server.bodyTimeoutMs), keepIfEarlier: false)
        }
        if events & UInt32(EPOLLOUT.rawValue) != 0 {
            guard u.flush() else { upstreamFailed(u); updateInterest(); return }
            pumpRequestBody(u)
            guard case .proxying = state else { return }
            guard u.flush() else { upstreamFailed(u); updateInterest(); return }
            if u.requestComplete && !u.responseHeadDone { progress() }
        }
        if events & UInt32(EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue | EPOLLRDHUP.rawValue) != 0 {
            switch u.readOnce() {
            case nil:
                upstreamFailed(u)
                updateInterest()
                return
            case .bytes?:
                progress()
                relayResponse(u)
            case .eof?:
                relayResponse(u)
            case .wouldBlock?:
                break
            }
        }
        if case .proxying(let current) = state, current === u { updateUpstreamInterest(u) }
        updateInterest()
    }

    func updateUpstreamInterest(_ u: UpstreamConnection) {
        guard u.phase == .active || u.phase == .connecting else { return }
        var mask: UInt32 = 0
        if u.phase == .connecting {
            mask = UInt32(EPOLLOUT.rawValue)
        } else {
            if let out = u.output, !out.isEmpty { mask |= UInt32(EPOLLOUT.rawValue) }
            let clientRoom = output.map { $0.writableBytes > 256 } ?? true
            let upstreamRoom = u.input.map { $0.writableBytes > 0 || $0.readerIndex > 0 } ?? true
            if clientRoom && upstreamRoom && !u.eof { mask |= UInt32(EPOLLIN.rawValue | EPOLLRDHUP.rawValue) }
        }
        worker.loop.setInterest(u.fd, mask)
    }

    // MARK: response

    /// Parses the upstream's head once complete, then relays body bytes as room allows.
    func relayResponse(_ u: UpstreamConnection) {
        while true {
            guard case .proxying(let current) = state, current === u, let uin = u.input else { return }
            if !u.responseHeadDone {
                if uin.isEmpty {
                    if u.eof { upstreamFailed(u) }
                    return
                }
                switch parseResponseHead(uin.readable, fields: worker.responseFields, limits: snapshot.httpLimits) {
                case .incomplete:
                    if u.eof || (uin.readerIndex == 0 && uin.writableBytes == 0) { answerExchangeError(u, .badGateway) }
                    return
                case .error:
                    answerExchangeError(u, .badGateway)
                    return
                case let .complete(h):
                    if h.status >= 100 && h.status < 200 && h.status != 101 {
                        u.input!.consume(h.headLength)   // interim answers are not relayed
                        continue
                    }
                    if h.status == 101 {
                        if u.tunnelRequested { startTunnel(u, h) } else { answerExchangeError(u, .badGateway) }
                        return
                    }
                    guard writeResponseHead(u, h) else { return }  // no room yet: resumes on flush
                }
            }
            let done = pumpResponseBody(u)
            guard case .proxying(let still) = state, still === u else { return }
            if !(output?.isEmpty ?? true) {
                guard flush() else { abort(); return }
            }
            if done { finishExchange(u) }
            return
        }
    }

    /// Writes the client's response head: the upstream's status line and fields without
    /// hop-by-hop ones, framing re-emitted. False when `output` has no room for it yet.
    private func writeResponseHead(_ u: UpstreamConnection, _ h: ResponseHead) -> Bool {
        guard let uin = u.input else { return false }
        let buf = uin.readable
        if output == nil { output = worker.buffers.take() }
        guard output!.writableBytes >= h.headLength + 128 else {
            if output!.readerIndex > 0 { output!.compact() }
            return output!.writableBytes >= h.headLength + 128 ? writeResponseHead(u, h) : false
        }
        let framing = responseBody(h, requestWasHEAD: requestIsHEAD)
        var out = output!
        // Status line: our version, the upstream's code and reason.
        var lineEnd = 0
        while lineEnd + 1 < buf.count && !(buf[lineEnd] == 0x0D && buf[lineEnd + 1] == 0x0A) { lineEnd += 1 }
        out.append("HTTP/1.1")
        out.append(UnsafeRawBufferPointer(rebasing: buf[8..<lineEnd]))
        out.append("\r\n")
        var listed = ConnectionTokens()
        for i in 0..<h.fieldCount where HeaderName.equals(field(buf, worker.responseFields[i].name), "connection") {
            listed.add(field(buf, worker.responseFields[i].value), base: buf)
        }
        for i in 0..<h.fieldCount {
            let f = worker.responseFields[i]
            let name = field(buf, f.name)
            switch HeaderName.classify(name) {
            case .hopByHop, .upgrade:
                continue
            case .framing:
                // Kept as sent only where no body follows (HEAD, 304): it describes another answer.
                if case .none = framing, HeaderName.equals(name, "content-length") {} else { continue }
            default:
                if listed.contains(name, base: buf) { continue }
            }
            out.append(name)
            out.append(": ")
            out.append(field(buf, f.value))
            out.append("\r\n")
        }
        switch framing {
        case let .contentLength(n):
            out.append("Content-Length: ")
            out.append(decimal: n)
            out.append("\r\n")
            u.responseBody = .length(n)
        case .chunked:
            u.responseBody = .chunked(ChunkedDecoder())
            if u.chunkedToClient { out.append("Transfer-Encoding: chunked\r\n") } else { keepAlive = false }
        case .untilClose:
            u.responseBody = .untilClose
            if u.chunkedToClient { out.append("Transfer-Encoding: chunked\r\n") } else { keepAlive = false }
        case .none:
            u.responseBody = .none
        }
        if !keepAlive {
            out.append("Connection: close\r\n")
        } else if !u.chunkedToClient {
            out.append("Connection: keep-alive\r\n")
        }
        out.append("\r\n")
        output = out
        logLine.status = h.status
        u.input!.consume(h.headLength)
        u.responseHeadDone = true
        u.responseStarted = true
        u.responseKeepAlive = h.keepAlive
        setDeadline(worker.loop.now + UInt64(config.server.bodyTimeoutMs), keepIfEarlier: false)
        return true
    }

    @inline(__always)
    private func field(_ buf: UnsafeRawBufferPointer, _ r: ByteRange) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buf[r.start..<r.end])
    }

    /// Copies response body bytes to the client as room allows; true when the body is complete.
    private func pumpResponseBody(_ u: UpstreamConnection) -> Bool {
        guard var uin = u.input else { return true }
        if output == nil { output = worker.buffers.take() }
        var out = output!
        var complete = false
        var truncated = false
        switch u.responseBody {
        case .none:
            complete = true
        case let .length(remaining):
            let n = Int(min(remaining, Int64(min(uin.readableBytes, out.writableBytes))))
            if n > 0 {
                out.append(UnsafeRawBufferPointer(start: uin.base + uin.readerIndex, count: n))
                uin.consume(n)
                logLine.bytes += Int64(n)
            }
            u.responseBody = .length(remaining - Int64(n))
            complete = remaining - Int64(n) == 0
            if !complete && u.eof && uin.isEmpty { truncated = true }
        case var .chunked(decoder):
            switch ChunkedRelay.relay(from: &uin, to: &out, decoder: &decoder, reframe: u.chunkedToClient, moved: &logLine.bytes) {
            case .progress: if u.eof && uin.isEmpty { truncated = true }
            case .done: complete = true
            case .malformed, .tooLarge: truncated = true
            }
            u.responseBody = .chunked(decoder)
        case .untilClose:
            let room = out.writableBytes - 32
            let n = min(uin.readableBytes, max(0, room))
            if n > 0 {
                if u.chunkedToClient {
                    out.append(hex: n)
                    out.append("\r\n")
                }
                out.append(UnsafeRawBufferPointer(start: uin.base + uin.readerIndex, count: n))
                if u.chunkedToClient { out.append("\r\n") }
                uin.consume(n)
                logLine.bytes += Int64(n)
            }
            if u.eof && uin.isEmpty {
                if u.chunkedToClient { out.append("0\r\n\r\n") }
                complete = true
            }
        }
        u.input = uin
        output = out
        if truncated {
            // The answer cannot be completed: the client sees the connection end mid-body.
            _ = flush()
            abort()
            return false
        }
        return complete
    }

    private func finishExchange(_ u: UpstreamConnection) {
        var reusable = u.responseKeepAlive && u.requestComplete && !u.eof
        if case .untilClose = u.responseBody { reusable = false }
        if let uin = u.input, !uin.isEmpty { reusable = false }
        if reusable { u.pool.release(u) } else { u.pool.close(u) }
        state = .awaitingHead
        writeAccessLog()
        requestStart = 0
        if !keepAlive || peerClosed || worker.draining { closeAfterFlush = true }
        guard flush() else { abort(); return }
        if closeAfterFlush {
            if output?.isEmpty ?? true { close() }
            return
        }
        armIdleDeadline()
        processInput()
    }

    /// The upstream failed before its answer began: replay once on a fresh connection when
    /// that is safe (a bodyless idempotent request on a reused connection), else 502.
    func upstreamFailed(_ u: UpstreamConnection) {
        guard case .proxying(let current) = state, current === u else { return }
        if u.responseStarted {
            abort()
            return
        }
        if u.reused, let head = u.keptRequestHead, !u.gotBytes {
            let pool = u.pool
            if let fresh = try? pool.connectNew() {
                fresh.beginExchange(client: self)
                fresh.input = worker.buffers.take()
                fresh.output = worker.buffers.take()
                fresh.output!.append(head)
                fresh.requestComplete = true
                fresh.tunnelRequested = u.tunnelRequested
                fresh.chunkedToClient = u.chunkedToClient
                pool.close(u)
                state = .proxying(fresh)
                setDeadline(worker.loop.now + UInt64(config.server.connectTimeoutMs), keepIfEarlier: false)
                updateUpstreamInterest(fresh)
                return
            }
        }
        answerExchangeError(u, .badGateway)
    }

    func upstreamTimedOut(_ u: UpstreamConnection) {
        if u.responseStarted { abort(); return }
        answerExchangeError(u, .gatewayTimeout)
    }

    /// Answers the client itself for an exchange that failed before its answer began.
    func answerExchangeError(_ u: UpstreamConnection, _ response: GatewayResponse) {
        let requestComplete = u.requestComplete
        u.pool.close(u)
        state = .awaitingHead
        if requestComplete && keepAlive && !peerClosed {
            let bytes = errorBytes(response, close: false)
            guard appendOutput(bytes) else { respondAndClose(response); return }
            logLine.status = response.status
            logLine.bytes = Int64(bytes.count)
            finishLocalRequest()
            if case .awaitingHead = state { processInput() }
        } else {
            respondAndClose(response)
        }
    }

    // MARK: tunnel

    private func startTunnel(_ u: UpstreamConnection, _ h: ResponseHead) {
        guard var uin = u.input else { return }
        if output == nil { output = worker.buffers.take() }
        // The 101 head goes to the client as the upstream sent it: it is the handshake.
        guard output!.append(UnsafeRawBufferPointer(start: uin.base + uin.readerIndex, count: h.headLength)) else {
            answerExchangeError(u, .badGateway)
            return
        }
        uin.consume(h.headLength)
        u.input = uin
        logLine.status = 101
        writeAccessLog()
        state = .tunnel(u)
        u.responseStarted = true
        setDeadline(worker.loop.now + UInt64(config.server.idleTimeoutMs), keepIfEarlier: false)
        moveTunnelBytes(u)
    }

    /// Moves whatever each side has buffered to the other and flushes both.
    private func moveTunnelBytes(_ u: UpstreamConnection) {
        if var uin = u.input, !uin.isEmpty, output != nil {
            let n = min(uin.readableBytes, output!.writableBytes)
            output!.append(UnsafeRawBufferPointer(start: uin.base + uin.readerIndex, count: n))
            uin.consume(n)
            u.input = uin
        }
        if var inp = input, !inp.isEmpty, u.output != nil {
            let n = min(inp.readableBytes, u.output!.writableBytes)
            u.output!.append(UnsafeRawBufferPointer(start: inp.base + inp.readerIndex, count: n))
            inp.consume(n)
            input = inp
        }
        guard flush(), u.flush() else { abort(); return }
        var mask: UInt32 = 0
        if let out = u.output, !out.isEmpty { mask |= UInt32(EPOLLOUT.rawValue) }
        if !u.eof, output.map({ $0.writableBytes > 0 }) ?? true { mask |= UInt32(EPOLLIN.rawValue | EPOLLRDHUP.rawValue) }
        worker.loop.setInterest(u.fd, mask)
        if u.eof && (u.input?.isEmpty ?? true) && (output?.isEmpty ?? true) { close() }
    }

    func tunnelClientToUpstream(_ u: UpstreamConnection) {
        if input == nil { input = worker.buffers.take() }
        guard var inp = input else { return }
        if inp.writableBytes == 0 { inp.compact() }
        if inp.writableBytes > 0 {
            switch try? Syscall.read(fd, inp.base + inp.writerIndex, inp.writableBytes) {
            case let .bytes(n)?:
                inp.writerIndex += n
                progress()
            case .eof?:
                peerClosed = true
                Socket.shutdownWrite(u.fd)
            case .wouldBlock?:
                break
            case nil:
                input = inp
                abort()
                return
            }
        }
        input = inp
        moveTunnelBytes(u)
    }

    func tunnelUpstreamToClient(_ u: UpstreamConnection) {
        switch u.readOnce() {
        case nil:
            abort()
            return
        case .bytes?:
            progress()
        default:
            break
        }
        moveTunnelBytes(u)
    }
}

/// Fixed answers of the admin endpoints on the main listener.
enum AdminResponses {
    static let ready: [UInt8] = {
        let body = "{\"status\":\"ready\"}"
        return Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
    }()

    static func notReady(_ problems: [String]) -> [UInt8] {
        GatewayResponse.build(status: 503, reason: "Service Unavailable", detail: problems.joined(separator: "; "), close: false)
    }

    static let healthy: [UInt8] = {
        let body = "{\"status\":\"ok\"}"
        return Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
    }()
}
