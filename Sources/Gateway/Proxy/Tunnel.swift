/// A WebSocket (or other upgrade) tunnel, both ends in one place: once the upstream answers
/// 101, its head goes to the client as it came (it is the handshake) and bytes pass both ways
/// unparsed, each side read only while the other can take more. A half-close passes on; the
/// tunnel ends when the upstream has closed and everything it sent is delivered. Only the state
/// machine decides when it started (`tunnelBegins`) and what a close does.
extension ClientConnection: UpgradableStream {
    /// The 101 head goes to the client as the upstream sent it (it is the handshake); then
    /// bytes pass both ways unparsed.
    func upgradeAccepted(_ u: UpstreamConnection, headLength: Int) {
        guard let uin = u.input else { return }
        if output == nil { output = worker.buffers.take() }
        guard output!.append(UnsafeRawBufferPointer(start: uin.base + uin.readerIndex, count: headLength)) else {
            u.pool.close(u)
            exchangeFailed(.badGateway, requestComplete: false)
            return
        }
        u.input!.consume(headLength)
        logLine.status = 101
        writeAccessLog()
        machine.tunnelBegins(u)
        setDeadline(worker.loop.now + UInt64(config.server.idleTimeoutMs), keepIfEarlier: false)
        moveTunnelBytes(u)
    }

    func tunnelEvent(_ u: UpstreamConnection, _ events: IOEvents) {
        if events.writable { _ = u.flush() }
        switch u.readOnce() {
        case nil:
            abort("upstream_read_failed")
            return
        case .bytes?:
            progress()
        default:
            break
        }
        moveTunnelBytes(u)
    }

    func tunnelClientToUpstream(_ u: UpstreamConnection) {
        if input == nil { input = worker.buffers.take() }
        if input!.writableBytes == 0 { input!.compact() }
        if input!.writableBytes > 0 {
            switch read() {
            case .bytes?:
                progress()
            case .eof?:
                // The half-close passes on; the tunnel ends when the upstream closes too.
                if case let .shutdownUpstreamWrite(u) = machine.peerDidClose(requestSent: true) { u.shutdownWrite() }
            case .wouldBlock?:
                break
            case nil:
                abort("client_read_failed")
                return
            }
        }
        moveTunnelBytes(u)
    }

    /// Moves whatever each side has buffered to the other and flushes both.
    private func moveTunnelBytes(_ u: UpstreamConnection) {
        if !(u.input?.isEmpty ?? true), output != nil { _ = output!.move(from: &u.input!) }
        // Over TLS, bytes held in the session come with no event: read while each read brings
        // some and the client side has room.
        while u.transport.hasBufferedInput, u.input?.isEmpty == true, (output?.writableBytes ?? 0) > 0 {
            guard let r = u.readOnce() else { abort("upstream_read_failed"); return }
            guard case .bytes = r else { break }
            _ = output!.move(from: &u.input!)
        }
        if !(input?.isEmpty ?? true), u.output != nil { _ = u.output!.move(from: &input!) }
        guard flush(), u.flush() else { abort("write_failed"); return }
        var interest: Interest = []
        if u.hasOutput { interest.insert(.write) }
        if !u.exchange.eof, output.map({ $0.writableBytes > 0 }) ?? true { interest.insert(.read) }
        guard u.watch(interest) else { abort("epoll_failed"); return }
        if u.exchange.eof && (u.input?.isEmpty ?? true) && !outputPending { close() }
    }
}
