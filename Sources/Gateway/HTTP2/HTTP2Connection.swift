import CGatewayShims
import Glibc

/// One HTTP/2 client connection, owned by one loop thread: its socket (through the transport,
/// plain or TLS), its nghttp2 session and its streams. A connection becomes one when an HTTP/1.1
/// connection's first bytes are the client preface (h2c with prior knowledge, or h2 chosen by
/// ALPN); the bytes read so far come with it.
///
/// nghttp2 is fed in memory: bytes read go to `session.receive`, and `send` moves what the
/// session has to say into `output` and on to the socket. No nghttp2 call is made from inside
/// another (`inSession`): what a stream wants sent while the session is busy is sent when it
/// returns.
final class HTTP2Connection {
    let socket: Socket
    let generation: UInt32
    /// The loop's worker, which outlives every connection on it.
    unowned(unsafe) let worker: Worker
    let peer: PeerAddress
    let transport: Transport
    private(set) var session: HTTP2Session!
    var snapshot: GatewayState
    private var input: ByteBuffer?
    private var output: ByteBuffer?
    /// Bytes the session lent that did not fit in `output` yet.
    private var unsent: UnsafeRawBufferPointer?
    private(set) var streams: [Int32: HTTP2Stream] = [:]
    /// Inside a session call: sends wait until it returns.
    private var inSession = false
    private var wantsSend = false
    /// In the worker's list of connections to flush after the current batch.
    private var flushQueued = false
    /// Streams whose answer buffer drained inside the session's send: their upstream reads on.
    private var drained: [HTTP2Stream] = []
    private(set) var isClosed = false
    private var draining = false
    /// Bytes of stream buffers (request bodies, answers) held for this connection.
    var heldBytes = 0
    let maxHeldBytes: Int
    var deadline: UInt64 = 0
    /// Time of this connection's entry in the loop's timer heap (0: none).
    var timerAt: UInt64 = 0
    /// A stream has been opened: from now on the idle timeout applies, not the header timeout.
    private(set) var sawStream = false
    private var lastTicket: UInt64 = 0

    /// A ticket for a stream's work on the blocking pool (a result with another is stale).
    func nextTicket() -> UInt64 {
        lastTicket &+= 1
        return lastTicket
    }

    init?(handingOver socket: Socket, generation: UInt32, worker: Worker, peer: PeerAddress, transport: Transport,
          snapshot: GatewayState, input: ByteBuffer?) {
        self.socket = socket
        self.generation = generation
        self.worker = worker
        self.peer = peer
        self.transport = transport
        self.snapshot = snapshot
        self.input = input
        resetBudgetAt = worker.loop.now
        let server = snapshot.config.server
        maxHeldBytes = Int(min(server.http2MaxConnectionBuffer, Int64(Int32.max)))
        let settings = HTTP2SessionSettings(maxConcurrentStreams: UInt32(server.http2MaxConcurrentStreams),
                                            maxHeaderListSize: UInt32(snapshot.httpLimits.headerBytes),
                                            connectionWindow: Int32(maxHeldBytes))
        guard let s = HTTP2Session(owner: self, settings: settings) else { return nil }
        session = s
        setDeadline(worker.loop.now + UInt64(server.headerTimeoutMs))
        idleTurn = worker.connectionWaits(slot: socket.slot, generation: generation)
    }

    var config: GatewayConfig { snapshot.config }

    // MARK: events

    func handle(_ events: IOEvents) {
        if events.readable { readable() }
        if !isClosed && events.writable { send() }
        outputDue()
    }

    /// Asks for the session's output to be written once the loop's current batch of events is
    /// handled, so the answers of many streams leave in one write (Worker.flushHTTP2Output).
    func outputDue() {
        guard !isClosed, !flushQueued else { return }
        flushQueued = true
        worker.queueHTTP2Flush(self)
    }

    /// The worker's call after a batch: write what is due, then watch for what comes next.
    func flushQueuedOutput() {
        flushQueued = false
        afterEvent()
    }

    /// Feeds the bytes that came with the hand-over, then goes on as any event does.
    func start() {
        if let b = input, !b.isEmpty { receive() }
        afterEvent()
    }

    /// Sends what the streams queued and sets what the socket is watched for.
    func afterEvent() {
        guard !isClosed else { return }
        send()
        guard !isClosed else { return }
        if session.isDone && !outputPending { close(); return }
        updateInterest()
    }

    private func readable() {
        var rounds = 0
        repeat {
            rounds += 1
            if input == nil { input = worker.buffers.take() }
            input!.clear()
            let r: IOResult
            do {
                r = try transport.read(socket, into: &input!)
            } catch {
                abort("client_read_failed")
                return
            }
            switch r {
            case .bytes: receive()
            case .wouldBlock: releaseInput(); return
            case .eof: abort("client_closed"); return
            }
        } while !isClosed && (transport.hasBufferedInput && rounds < 16) && !outputFull
        releaseInput()
    }

    private func receive() {
        guard let b = input else { return }
        inSession = true
        let failed = session.receive(b.readable)
        inSession = false
        input!.clear()
        if let failed {
            worker.logEvent("HTTP/2 connection from \(peer.text) ended: \(failed == NGHTTP2_ENHANCE_YOUR_CALM ? "a flood" : "a protocol error")")
            // A connection error: nghttp2 queued its GOAWAY; it goes out, then the connection ends.
            for s in streams.values { s.connectionEnds("protocol_error") }
            streams.removeAll()
            lastStream = nil
            send()
            if !isClosed { transport.shutdownWrite(socket); close() }
            return
        }
    }

    private func releaseInput() {
        if let b = input, b.isEmpty { worker.buffers.release(b); input = nil }
    }

    // MARK: output

    /// Moves what the session has to send into `output` and writes it, as far as the socket
    /// takes it; streams whose answer drained meanwhile read their upstream on.
    func send() {
        guard !isClosed else { return }
        guard !inSession else { wantsSend = true; return }
        inSession = true
        repeat {
            wantsSend = false
            if output == nil { output = worker.buffers.take() }
            output!.compact()
            var failed = false
            while true {
                if let pending = unsent {
                    let n = min(pending.count, output!.writableBytes)
                    output!.appendWithinRoom(UnsafeRawBufferPointer(rebasing: pending[0..<n]))
                    if n < pending.count { unsent = UnsafeRawBufferPointer(rebasing: pending[n...]); break }
                    unsent = nil
                }
                guard output!.writableBytes > 0, let chunk = session.nextOutput(failed: &failed) else { break }
                unsent = chunk
            }
            if failed { inSession = false; abort("protocol_error"); return }
            do {
                _ = try transport.write(socket, from: &output!)
            } catch {
                inSession = false
                abort("client_write_failed")
                return
            }
            let kicked = drained
            drained.removeAll(keepingCapacity: true)
            for s in kicked { s.answerHasRoom() }
        } while (wantsSend || !drained.isEmpty) && !outputFull && !isClosed
        inSession = false
        if let b = output, b.isEmpty, unsent == nil { worker.buffers.release(b); output = nil }
    }

    /// `output` cannot take more: the session is not asked for more frames, nor the client read.
    private var outputFull: Bool { unsent != nil || (output.map { $0.writableBytes == 0 } ?? false) }

    private var outputPending: Bool { !(output?.isEmpty ?? true) || unsent != nil || transport.hasPendingOutput }

    private func updateInterest() {
        var interest: Interest = []
        // Reading stops while the client does not read what is queued for it.
        if !outputFull { interest.insert(.read) }
        if outputPending { interest.insert(.write) }
        if interest.contains(.read) && transport.hasBufferedInput {
            readable()
            if isClosed { return }
            send()
        }
        do {
            try worker.loop.setInterest(socket, interest)
        } catch {
            worker.logEvent("HTTP/2 connection from \(peer.text) closed: \(error)")
            abort("epoll_failed")
        }
    }

    // MARK: streams (called from the session's callbacks)

    func streamBegins(_ id: Int32) {
        sawStream = true
        snapshot = worker.state
        let s = HTTP2Stream(id: id, connection: self)
        streams[id] = s
        lastStream = s
    }

    /// The stream the session last spoke of: its callbacks come in runs for one stream (a header
    /// block, its DATA), so most find it here without a lookup.
    private var lastStream: HTTP2Stream?

    private func stream(_ id: Int32) -> HTTP2Stream? {
        if let s = lastStream, s.id == id { return s }
        lastStream = streams[id]
        return lastStream
    }

    func streamHeader(_ id: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        stream(id)?.header(name: name, value: value)
    }

    func streamHeadersEnded(_ id: Int32, endStream: Bool) {
        stream(id)?.headersEnded(endStream: endStream)
    }

    func streamData(_ id: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let s = stream(id) else { session.consume(id, bytes.count); return }
        s.data(bytes)
    }

    func streamRequestEnded(_ id: Int32) {
        stream(id)?.requestEnded()
    }

    /// The client reset a stream. Resets cost from a budget (a burst of `resetBurst`, refilled
    /// at `resetsPerSecond`): a client that opens and cancels streams faster (rapid reset,
    /// CVE-2023-44487) is sent GOAWAY ENHANCE_YOUR_CALM and the connection ends.
    func streamResetByClient() {
        let now = worker.loop.now
        resetBudget = min(Self.resetBurst, resetBudget + Double(now - resetBudgetAt) * Self.resetsPerSecond / 1000)
        resetBudgetAt = now
        resetBudget -= 1
        if resetBudget < 0 && !calmedDown {
            calmedDown = true
            worker.logEvent("HTTP/2 connection from \(peer.text) ended: too many streams reset (rapid reset)")
            session.terminate(NGHTTP2_ENHANCE_YOUR_CALM)
        }
    }

    static let resetBurst = 200.0
    static let resetsPerSecond = 33.0
    private var resetBudget = HTTP2Connection.resetBurst
    private var resetBudgetAt: UInt64 = 0
    private var calmedDown = false

    func streamClosed(_ id: Int32, errorCode: UInt32) {
        guard let s = streams.removeValue(forKey: id) else { return }
        if lastStream === s { lastStream = nil }
        if !bufferWaiters.isEmpty { bufferWaiters.removeAll { $0 === s } }
        s.closed(errorCode: errorCode)
        armIdleDeadlineIfIdle()
        if draining && streams.isEmpty { session.goAway() }
    }

    /// The session asks for more of a stream's answer body: bytes copied, and whether it ended
    /// there; (-1, false) when none is ready yet.
    func streamAnswerBody(_ id: Int32, into buf: UnsafeMutableRawBufferPointer) -> (Int, Bool) {
        guard let s = stream(id) else { return (0, true) }
        return s.readAnswer(into: buf)
    }

    /// A stream's answer buffer drained inside the session's send: it reads its upstream on
    /// once the send returns.
    func answerDrained(_ s: HTTP2Stream) {
        drained.append(s)
    }

    /// Bytes of the streams' buffers, against `maxHeldBytes`; streams that waited for room under
    /// the limit read their upstream on once there is some.
    func hold(_ n: Int) {
        heldBytes += n
        if n < 0 && heldBytes < maxHeldBytes && !bufferWaiters.isEmpty {
            drained.append(contentsOf: bufferWaiters)
            bufferWaiters.removeAll()
            outputDue()
        }
    }

    /// `s` could not take its answer for the connection's limit.
    func waitForBuffer(_ s: HTTP2Stream) {
        if !bufferWaiters.contains(where: { $0 === s }) { bufferWaiters.append(s) }
    }

    private var bufferWaiters: [HTTP2Stream] = []

    // MARK: drain, close

    /// No stream open and nothing left to write: GOAWAY costs its client nothing but a new
    /// connection.
    var isIdle: Bool { streams.isEmpty && !outputPending && transport.isQuiet && !draining && !isClosed }

    /// The number of the connection's current wait for a stream (begun when it was adopted or
    /// its last stream closed): its entry in the worker's idle queue.
    var idleTurn: UInt64 = 0

    /// Told to go (GOAWAY sent), or closed.
    var isGoing: Bool { draining || isClosed }

    /// Shutdown: GOAWAY now (no new streams); open streams finish, then the connection closes.
    func drain() {
        guard !draining, !isClosed else { return }
        draining = true
        session.goAway()
        afterEvent()
    }

    /// Ends the connection at once; streams still open get their log line with `why`.
    func abort(_ why: StaticString) {
        for s in streams.values { s.connectionEnds(why) }
        streams.removeAll()
        lastStream = nil
        close()
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        for s in streams.values { s.connectionEnds("client_closed") }
        streams.removeAll()
        lastStream = nil
        drained.removeAll()
        bufferWaiters.removeAll()
        if let b = input { worker.buffers.release(b); input = nil }
        if let b = output { worker.buffers.release(b); output = nil }
        unsent = nil
        worker.loop.close(socket)
        worker.connectionClosed()
    }
}
