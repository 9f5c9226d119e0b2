import CGatewayShims
import Glibc
import TokenCore

/// One worker thread: an event loop with its own SO_REUSEPORT listener, its client and upstream
/// connections, upstream pools, buffer pool, and the thread's token verifier. Nothing here is
/// shared with other workers; they meet only through the snapshot handed in by `execute`.
final class Worker {
    let index: Int
    let loop: EventLoop
    private(set) var state: GatewayState
    private(set) var verifier: TokenVerifier
    /// Verifiers for identity providers' tokens on routes that accept them.
    let idpVerifiers = IdPVerifiers()
    private(set) var issuer: TokenIssuer
    /// Checks signatures but not expiry: the envelope refresh accepts the client's expired
    /// access token as proof of the same subject.
    private(set) var lenientVerifier: TokenVerifier
    let throttle: LoginThrottle
    let blocking: BlockingPool
    let buffers = BufferPool(bufferSize: HTTPLimits.bufferBytes, largeSize: HTTPLimits.maxHeadBytes)
    /// Scratch for HTTP/2 answer heads (made on first use).
    private(set) lazy var http2Fields = HTTP2FieldList()
    private(set) var requestFields: UnsafeMutablePointer<HeaderField>
    private(set) var responseFields: UnsafeMutablePointer<HeaderField>
    private var fieldCapacity: Int
    /// Listening sockets: one plain and one HTTPS of its own, or after a takeover those the
    /// previous process handed over (SO_REUSEPORT: the kernel spreads accepts over them all).
    private(set) var listeners: [(socket: Socket, tls: Bool)] = []
    private var pools: [UpstreamPool] = []
    /// HTTP/2 connections with output due, written once per batch of events.
    private var http2FlushQueue: [HTTP2Connection] = []
    private(set) var connectionCount = 0
    /// Counted for `/metrics` (WorkerMetricsRecording.swift); `routeSlots[i]` is route i's slot.
    var metrics = WorkerMetrics()
    var routeSlots: [Int] = []
    private var acceptPaused = false
    /// Idle connections asked to go at `max_connections` since the last sweep (logged there).
    var connectionsShed = 0
    /// Client connections in the order they began to wait for a request (ConnectionShedding).
    var idleQueue = IdleQueue()
    var lastIdleTurn: UInt64 = 0
    private(set) var draining = false
    /// Draining for a takeover: an answer whose head promised keep-alive keeps the connection
    /// for one more request (answered with close) rather than closing under the client.
    private(set) var handingOver = false
    /// Answers end their connection because the worker drains (SIGTERM, not a takeover).
    var closesAfterAnswers: Bool { draining && !handingOver }
    private var drainDeadline: UInt64 = 0
    private var stopped = false
    private let log: LogWriter
    private var logBatch: [UInt8] = []
    private var requestCounter: UInt64 = 0
    private let requestIDPrefix: [UInt8]
    private var lastSweep: UInt64 = 0
    /// Called on the worker's thread when it has finished (after a drain).
    var onExit: (@Sendable () -> Void)?

    init(index: Int, state: GatewayState, log: LogWriter, throttle: LoginThrottle, blocking: BlockingPool) throws {
        self.index = index
        self.loop = try EventLoop()
        self.state = state
        self.log = log
        self.throttle = throttle
        self.blocking = blocking
        self.verifier = TokenVerifier(policy: state.policy)
        self.issuer = TokenIssuer(settings: state.issuerSettings)
        self.lenientVerifier = TokenVerifier(policy: Self.lenientPolicy(state.policy))
        fieldCapacity = max(state.httpLimits.maxHeaderFields, 1)
        requestFields = .allocate(capacity: fieldCapacity)
        responseFields = .allocate(capacity: fieldCapacity)
        requestIDPrefix = Array(Crypto.hex(Crypto.randomBytes(6)).utf8)
        logBatch.reserveCapacity(64 * 1024)
        pools = makePools(for: state, reusing: [])
        routeSlots = routeSlots(for: state)
    }

    deinit {
        requestFields.deallocate()
        responseFields.deallocate()
    }

    /// Opens this worker's listeners, plain and HTTPS (SO_REUSEPORT: one each per worker, the
    /// kernel spreads accepts).
    func listen() throws {
        try adopt(Socket.listen(state.listen), tls: false)
        if let address = state.tlsListen { try adopt(Socket.listen(address), tls: true) }
    }

    /// Serves `socket`, an open listener (its own, or one handed over by the process this one
    /// takes over from).
    func adopt(_ socket: Socket, tls: Bool) throws {
        try loop.register(socket, interest: .read, handler: .listener(socket, tls: tls))
        listeners.append((socket, tls))
    }

    private func closeListeners() {
        for l in listeners { loop.close(l.socket) }
        listeners.removeAll()
    }

    // MARK: the loop

    func run() {
        while !stopped {
            loop.wait(maxWaitMs: http2FlushQueue.isEmpty ? 1000 : 0) { handler, events in
                switch handler {
                case let .listener(l, tls): acceptConnections(from: l, tls: tls)
                case .wakeup: loop.runInbox()
                case let .client(c): c.handle(events)
                case let .http2(h): h.handle(events)
                case let .upstream(u): upstreamEvent(u, events)
                }
            }
            flushHTTP2Output()
            fireTimers()
            flushHTTP2Output()
            if loop.now - lastSweep >= 1000 { sweep() }
            flushLog()
        }
        for p in pools { p.closeAll() }
        closeListeners()
        flushLog()
        onExit?()
    }

    private func upstreamEvent(_ u: UpstreamConnection, _ events: IOEvents) {
        switch u.phase {
        case .idle:
            // An idle pooled connection became readable: the upstream closed it (or misbehaves).
            if !u.idleReadableKeepsIt() { u.pool.close(u) }
        case .closed:
            break
        case .connecting, .active:
            u.exchangeEvent(events)
        }
    }

    private func fireTimers() {
        while let e = loop.popDueTimer() {
            switch loop.handler(e.slot, generation: e.generation) {
            case let .client(c)? where c.timerAt == e.time:
                c.timerFired(now: loop.now)
                if !c.machine.isClosed { c.updateInterest() }
            case let .http2(h)? where h.timerAt == e.time:
                h.timerFired(now: loop.now)
            default:
                continue
            }
        }
    }

    private func sweep() {
        lastSweep = loop.now
        for p in pools { p.sweep(now: loop.now) }
        buffers.trim()
        endStreamsOfExpiredTokens()
        // Accepting paused for want of descriptors resumes on a closing connection, or here: a
        // worker with nothing to close would otherwise never accept again. Paused at the limit,
        // it resumes here too: a client still waiting then finds the connections that have gone
        // idle since (the listener is level-triggered: it reports the waiting client at once).
        if acceptPaused && !draining { resumeAccepting() }
        if connectionsShed > 0 {
            logEvent("max_connections (\(state.config.server.maxConnections)) reached: \(connectionsShed) idle connections asked to go to make room")
            connectionsShed = 0
        }
        if draining && (connectionCount == 0 || loop.now >= drainDeadline) { stopped = true }
    }

    // MARK: accepting

    private func acceptConnections(from listener: Socket, tls: Bool) {
        var peer = PeerAddress()
        for attempt in 0..<64 {
            guard connectionCount < state.config.server.maxConnections else {
                // At the limit. On the first attempt the listener's readiness says a client
                // waits: accepting pauses, and idle connections make room (it resumes as they
                // close). After accepts, none may wait: the (level-triggered) listener says so.
                if attempt == 0 {
                    pauseAccepting()
                    makeRoomForNewConnections()
                }
                return
            }
            let accepted: Socket?
            do {
                accepted = try listener.accept(peer: &peer)
            } catch {
                // Out of descriptors (EMFILE/ENFILE) or similar: stop accepting until one closes.
                pauseAccepting()
                return
            }
            guard let socket = accepted else { return }
            var transport = Transport.plain
            if tls {
                guard let context = state.tls, let session = TLSSession(context: context, buffers: buffers) else {
                    socket.close()
                    continue
                }
                transport = .tls(session)
            }
            let gen = loop.generation(of: socket.slot) &+ 1
            let c = ClientConnection(socket: socket, generation: gen, worker: self, peer: peer, snapshot: state, transport: transport)
            do {
                let registered = try loop.register(socket, interest: .read, handler: .client(c))
                precondition(registered == gen)
            } catch {
                // The kernel cannot watch one more descriptor (out of memory, the watch limit):
                // this client is turned away, the worker lives on and keeps accepting.
                logEvent("connection from \(peer.text) refused: \(error)")
                socket.close()
                continue
            }
            connectionCount += 1
            c.armIdleDeadline()
        }
    }

    /// Tunnels and streaming answers whose token has expired, and tunnels whose token was
    /// revoked, end here (once a second): expiry is enforced on long-lived streams too.
    private func endStreamsOfExpiredTokens() {
        let now = loop.unixNow
        endHTTP2StreamsOfExpiredTokens(now: now)
        for c in loop.clientConnections() where c.machine.request.tokenExpiresAt > 0 {
            switch c.machine.state {
            case let .tunnel(_, identity):
                var revoked = false
                if let id = identity {
                    revoked = id.tokenID.withUnsafeBytes { j in id.subject.withUnsafeBytes { s in id.loginID.withUnsafeBytes { l in
                        state.revocations.check(jti: j, subject: s, issuedAt: id.issuedAt, family: l.isEmpty ? nil : l) != nil } } }
                }
                if now >= c.machine.request.tokenExpiresAt || revoked {
                    logEvent("closed a tunnel of \(String(decoding: identity?.subject ?? [], as: UTF8.self)): its token \(revoked ? "was revoked" : "expired")")
                    c.abort(revoked ? "token_revoked" : "token_expired")
                }
            case .proxying(let u) where u.exchange.responseStarted && now >= c.machine.request.tokenExpiresAt:
                logEvent("ended a streaming answer: its token expired")
                c.abort("token_expired")
            default:
                break
            }
        }
    }

    private func pauseAccepting() {
        guard !acceptPaused, !listeners.isEmpty else { return }
        acceptPaused = true
        setListenerInterest([])
    }

    private func resumeAccepting() {
        guard acceptPaused, !listeners.isEmpty else { return }
        // Still paused when the kernel refuses: the next sweep tries again.
        acceptPaused = !setListenerInterest(.read)
    }

    /// False when the kernel refused for a listener.
    @discardableResult
    private func setListenerInterest(_ interest: Interest) -> Bool {
        var done = true
        for l in listeners {
            do { try loop.setInterest(l.socket, interest) } catch { logEvent("listener: \(error)"); done = false }
        }
        return done
    }

    func queueHTTP2Flush(_ h: HTTP2Connection) {
        http2FlushQueue.append(h)
    }

    /// Writes the output due on HTTP/2 connections; a write that frees room may make more due
    /// (an upstream read on), taken in further rounds, a bounded number of them per batch.
    private func flushHTTP2Output() {
        var rounds = 0
        while !http2FlushQueue.isEmpty && rounds < 16 {
            rounds += 1
            let due = http2FlushQueue
            http2FlushQueue.removeAll(keepingCapacity: true)
            for h in due { h.flushQueuedOutput() }
        }
    }

    func connectionClosed() {
        connectionCount -= 1
        if !draining && connectionCount < state.config.server.maxConnections { resumeAccepting() }
        if draining && connectionCount == 0 { stopped = true }
    }

    // MARK: snapshot, pools

    /// Swaps in a new snapshot (runs on this worker's thread). Requests in flight keep theirs.
    func install(_ newState: GatewayState) {
        if newState.policy.issuer != state.policy.issuer || newState.policy.leeway != state.policy.leeway {
            verifier = TokenVerifier(policy: newState.policy)
        }
        issuer = TokenIssuer(settings: newState.issuerSettings)
        lenientVerifier = TokenVerifier(policy: Self.lenientPolicy(newState.policy))
        if newState.httpLimits.maxHeaderFields > fieldCapacity {
            requestFields.deallocate()
            responseFields.deallocate()
            fieldCapacity = newState.httpLimits.maxHeaderFields
            requestFields = .allocate(capacity: fieldCapacity)
            responseFields = .allocate(capacity: fieldCapacity)
        }
        let old = pools
        pools = makePools(for: newState, reusing: old)
        for p in old where !pools.contains(where: { $0 === p }) { p.closeAll() }
        let http2Off = state.config.server.http2 && !newState.config.server.http2
        state = newState
        routeSlots = routeSlots(for: newState)
        // HTTP/2 turned off: its connections are told to go (GOAWAY); their open streams finish,
        // and the clients come back speaking HTTP/1.1.
        if http2Off { for h in loop.http2Connections() { h.drain() } }
        if !draining { shedExcessConnections() }
    }

    private func makePools(for s: GatewayState, reusing old: [UpstreamPool]) -> [UpstreamPool] {
        s.upstreams.indices.map { i in
            if let p = old.first(where: { $0.target.key == s.upstreams[i].key }) {
                // New trust (the CA file is read again on every reload): idle TLS connections
                // made under the old one go; busy ones finish their exchange and are not kept.
                if p.target.tls?.context !== s.upstreams[i].tls?.context { p.closeAll() }
                p.target = s.upstreams[i]
                p.maxIdle = s.config.server.upstreamIdlePerWorker
                p.idleTimeoutMs = UInt64(s.config.server.upstreamIdleTimeoutMs)
                return p
            }
            return UpstreamPool(target: s.upstreams[i], worker: self,
                                maxIdle: s.config.server.upstreamIdlePerWorker,
                                idleTimeoutMs: UInt64(s.config.server.upstreamIdleTimeoutMs))
        }
    }

    @inline(__always)
    func pool(_ index: Int) -> UpstreamPool { pools[index] }

    var poolsForMetrics: [UpstreamPool] { pools }

    /// Stops accepting; exits once every connection has finished or `timeoutMs` has passed.
    /// HTTP/2 connections get GOAWAY and their streams finish. `handover`: another process
    /// accepts on the same sockets now (a takeover): the listeners are kept, not watched, so this
    /// one can take the traffic back if the successor dies (`resumeServing`), and an HTTP/1.1
    /// connection is not cut but answers its next request with `Connection: close` (cut, if still
    /// idle, only at `timeoutMs`). Otherwise idle keep-alive connections go now and busy ones
    /// after their request.
    func beginDrain(timeoutMs: Int, handover: Bool = false) {
        draining = true
        handingOver = handover
        drainDeadline = loop.now + UInt64(timeoutMs)
        if handover { pauseAccepting() } else { closeListeners() }
        for p in pools { p.closeAll() }
        for c in loop.clientConnections() {
            if handover { c.lastAnswerNext() } else { c.drain() }
        }
        for h in loop.http2Connections() { h.drain() }
        if connectionCount == 0 { stopped = true }
    }

    /// The process that took over died while this one drained: accept again, as before.
    func resumeServing() {
        guard handingOver else { return }
        draining = false
        handingOver = false
        stopped = false
        resumeAccepting()
    }

    static func lenientPolicy(_ p: VerifierPolicy) -> VerifierPolicy {
        var lenient = p
        lenient.leeway = 100 * 365 * 86_400
        return lenient
    }

    // MARK: request ids, logging

    /// Appends a new request ID (worker prefix + counter) and records it in the log entry; false
    /// (nothing written) when it does not fit.
    func appendRequestID(_ out: inout ByteBuffer, log entry: inout AccessLogEntry) -> Bool {
        requestCounter &+= 1
        let start = out.writerIndex
        guard out.append(requestIDPrefix), out.append(byte: UInt8(ascii: "-")),
              out.append(hex: Int(truncatingIfNeeded: requestCounter)) else {
            out.writerIndex = start
            return false
        }
        entry.requestID(UnsafeRawBufferPointer(start: out.base + start, count: out.writerIndex - start))
        return true
    }

    func logAccess(_ entry: inout AccessLogEntry, peer: PeerAddress, durationMs: Int64) {
        if log.format == .json {
            entry.writeJSON(to: &logBatch, ms: LogLine.wallClockMs(), peer: peer, durationMs: durationMs)
        } else {
            entry.write(to: &logBatch, unixTime: loop.unixNow, peer: peer, durationMs: durationMs)
        }
    }

    func logEvent(_ text: String) {
        if log.format == .json {
            let worker = Int64(index)
            logBatch += LogLine.event(text, format: .json) { out in
                LogLine.raw(&out, ",\"worker\":")
                LogLine.decimal(&out, worker)
            }
        } else {
            logBatch.append(contentsOf: "\(loop.unixNow) worker=\(index) \(text)\n".utf8)
        }
    }

    private func flushLog() {
        guard !logBatch.isEmpty else { return }
        logBatch.withUnsafeBytes { log.submit($0) }
        logBatch.removeAll(keepingCapacity: true)
    }
}
