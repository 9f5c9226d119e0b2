import CGatewayShims
import Glibc

/// How the bytes of a message body are delimited on the wire.
enum BodyFraming {
    case none
    case length(Int64)
    case chunked(ChunkedDecoder)
    /// Response body delimited by the upstream closing the connection.
    case untilClose
}

/// One connection to an upstream, owned by one loop: the HTTP/1.1 client side of an exchange
/// (driven in ProxyExchange.swift), plain or TLS. Idle ones wait in their `UpstreamPool`; an
/// active one carries exactly one client-side stream's request.
final class UpstreamConnection {
    enum Phase {
        case connecting
        case idle
        case active
        case closed
    }

    let socket: Socket
    let transport: Transport
    /// The trust its TLS session was made under (nil: plain).
    let trust: TLSClientContext?
    /// Connected, and shaking hands (an https upstream) before the request may go.
    var handshaking = false
    /// The sending side ends once `output` is written (`shutdownWrite`).
    private var writeShutdownWanted = false
    let generation: UInt32
    unowned let pool: UpstreamPool
    var phase: Phase
    var input: ByteBuffer?
    var output: ByteBuffer?
    /// The client side whose request this connection carries (strong only while active).
    var stream: (any ProxyStream)?
    /// The limits of the snapshot the request started with.
    var limits = HTTPLimits()
    /// Taken from the pool rather than freshly connected (a dead one may be retried once).
    var reused = false
    var idleSince: UInt64 = 0
    /// The loop batch in which it was taken from the pool (see `upstreamWasStale`).
    var takenInBatch: UInt64 = 0

    /// The exchange in flight, replaced whole by `beginExchange`.
    var exchange = ExchangeState()
    /// When the exchange began (monotonic nanoseconds; 0 when metrics are off).
    var exchangeStartNanos: UInt64 = 0

    init(socket: Socket, transport: Transport, trust: TLSClientContext?, generation: UInt32, pool: UpstreamPool, phase: Phase) {
        self.socket = socket
        self.transport = transport
        self.trust = trust
        self.generation = generation
        self.pool = pool
        self.phase = phase
    }

    /// Starts carrying `stream`'s request, described by `exchange`.
    func beginExchange(stream: any ProxyStream, _ exchange: ExchangeState) {
        self.stream = stream
        self.exchange = exchange
        exchangeStartNanos = pool.worker.state.config.metrics.enable ? monotonicNanos() : 0
        phase = phase == .connecting ? .connecting : .active
    }

    /// Writes as much of `output` as the socket takes. Returns false on a write error.
    @inline(__always)
    func flush() -> Bool {
        if !(output?.isEmpty ?? true) {
            // Keep the head bytes readable for a replay until the answer starts.
            let keep = exchange.keptHeadLength > 0 && !exchange.gotBytes
            do { _ = try transport.write(socket, from: &output!, keepDrained: keep) } catch { return false }
        } else if !transport.sendPending(socket) {
            return false
        }
        if writeShutdownWanted && (output?.isEmpty ?? true) { transport.shutdownWrite(socket) }
        return true
    }

    /// Bytes to send: request bytes in `output`, or TLS records not yet on the wire.
    var hasOutput: Bool { !(output?.isEmpty ?? true) || transport.hasPendingOutput }

    /// Reads once into `input`. nil on error.
    @inline(__always)
    func readOnce() -> IOResult? {
        guard input != nil else { return nil }
        if input!.writableBytes == 0 { input!.compact() }
        guard input!.writableBytes > 0 else { return .wouldBlock }
        do {
            let r = try transport.read(socket, into: &input!)
            if case .bytes = r {
                // The answer has started: the kept request head can go, and with the request sent
                // whole the output buffer too (a stream waiting on a slow reader holds one buffer);
                // a tunnel keeps it for the bytes it will carry up.
                if exchange.answerBytesArrived(), let out = output, out.isEmpty { output!.clear() }
                if exchange.requestComplete && !exchange.tunnelRequested, let out = output, out.readableBytes == 0 {
                    pool.worker.buffers.release(out)
                    output = nil
                }
            }
            if case .eof = r { exchange.eof = true }
            return r
        } catch {
            return nil
        }
    }

    /// Ends the sending side (a client's half-close passed on through a tunnel) once the bytes
    /// already taken are on the wire: over TLS, close_notify must follow the last record.
    func shutdownWrite() {
        writeShutdownWanted = true
        if output?.isEmpty ?? true { transport.shutdownWrite(socket) }
    }

    /// An idle pooled connection became readable: the upstream closed it or sent bytes nobody
    /// asked for (it is closed then), or — over TLS — sent whole records that carry no bytes of
    /// an answer (a late TLS 1.3 session ticket), which leave it usable. A record read in part
    /// could be stray answer bytes: the connection goes then too.
    func idleReadableKeepsIt() -> Bool {
        guard case .tls = transport else { return false }
        var scratch = pool.worker.buffers.take()
        defer { pool.worker.buffers.release(scratch) }
        if case .wouldBlock? = try? transport.read(socket, into: &scratch) { return transport.isQuiet }
        return false
    }

    /// Sets what the loop watches this connection for; false when the kernel refuses (the
    /// caller ends the exchange).
    func watch(_ interest: Interest) -> Bool {
        do { try pool.worker.loop.setInterest(socket, interest) } catch { return false }
        return true
    }

    /// Rewinds `output` to the kept request head, for a replay on another connection.
    var keptRequestHead: UnsafeRawBufferPointer? {
        guard let out = output, exchange.keptHeadLength > 0 else { return nil }
        return UnsafeRawBufferPointer(start: out.base, count: exchange.keptHeadLength)
    }
}

/// Keep-alive connections to one upstream, owned by one loop: at most `maxIdle` kept, each for
/// at most `idleTimeout`; a connection the upstream closed while idle is dropped when noticed.
final class UpstreamPool {
    /// Where new connections go (a reload may give new trust; open ones keep theirs).
    var target: UpstreamTarget
    unowned let worker: Worker
    private var idle: [UpstreamConnection] = []
    var maxIdle: Int
    var idleTimeoutMs: UInt64

    init(target: UpstreamTarget, worker: Worker, maxIdle: Int, idleTimeoutMs: UInt64) {
        self.target = target
        self.worker = worker
        self.maxIdle = maxIdle
        self.idleTimeoutMs = idleTimeoutMs
    }

    var idleCount: Int { idle.count }

    /// An idle connection (most recently used first) or a new one being connected.
    func acquire() throws(SystemError) -> UpstreamConnection {
        while let u = idle.popLast() {
            if u.phase == .idle {
                // Its interest (readable) stays as it was in the pool: an active connection wants
                // the same, so taking one costs no epoll_ctl.
                u.reused = true
                u.phase = .active
                u.takenInBatch = worker.loop.batch
                return u
            }
        }
        return try connectNew()
    }

    func connectNew() throws(SystemError) -> UpstreamConnection {
        var transport = Transport.plain
        if let tls = target.tls {
            guard let session = TLSSession(client: tls.context, host: tls.serverName, buffers: worker.buffers) else { throw .tls }
            transport = .tls(session)
        }
        let socket = try Socket.connect(target.address)
        let gen = worker.loop.generation(of: socket.slot) &+ 1
        let u = UpstreamConnection(socket: socket, transport: transport, trust: target.tls?.context, generation: gen, pool: self,
                                   phase: .connecting)
        do {
            let registered = try worker.loop.register(socket, interest: .write, handler: .upstream(u))
            precondition(registered == gen)
        } catch {
            socket.close()
            throw error
        }
        return u
    }

    /// Takes back a connection whose exchange ended cleanly.
    func release(_ u: UpstreamConnection) {
        u.stream = nil
        if let b = u.input { worker.buffers.release(b); u.input = nil }
        if let b = u.output { worker.buffers.release(b); u.output = nil }
        // Nothing may wait in a TLS session either: it would be taken for the next answer. A
        // connection made under trust a reload has replaced is not kept.
        guard idle.count < maxIdle, !worker.draining, u.transport.isQuiet, u.trust === target.tls?.context else { close(u); return }
        u.phase = .idle
        u.idleSince = worker.loop.now
        // Readable while idle means the upstream closed it (or sent garbage): drop it then.
        do { try worker.loop.setInterest(u.socket, .read) } catch { close(u); return }
        idle.append(u)
    }

    func close(_ u: UpstreamConnection) {
        guard u.phase != .closed else { return }
        u.phase = .closed
        u.stream = nil
        if let b = u.input { worker.buffers.release(b); u.input = nil }
        if let b = u.output { worker.buffers.release(b); u.output = nil }
        worker.loop.close(u.socket)
        if let i = idle.firstIndex(where: { $0 === u }) { idle.remove(at: i) }
    }

    /// Closes idle connections past their idle timeout (called about once a second).
    func sweep(now: UInt64) {
        let expired = idle.filter { now - $0.idleSince >= idleTimeoutMs || $0.phase != .idle }
        for u in expired { close(u) }
    }

    func closeAll() {
        for u in idle { close(u) }
        idle.removeAll()
    }
}
