import XCTest
@testable import Gateway

/// The client connection's state machine, transition by transition, without a socket. The
/// upstream handle is a plain number here.
final class ClientConnectionStateTests: XCTestCase {
    typealias Machine = ClientConnectionState<Int>

    private func head(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> RequestHead {
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 100)
        defer { fields.deallocate() }
        let result = Array(text.utf8).withUnsafeBytes { parseRequestHead($0, fields: fields, limits: HTTPLimits()) }
        guard case let .complete(h) = result else { XCTFail("\(result)", file: file, line: line); preconditionFailure() }
        return h
    }

    private func machine(keepAlive: Bool = true, draining: Bool = false) -> Machine {
        var m = Machine()
        m.requestBegins(keepAlive: keepAlive, isHEAD: false, speaks11: true, draining: draining, now: 100)
        return m
    }

    private let deferred = DeferredAnswer(consumed: 0, job: { true }, finish: { _ in (.noContent, 0) }, unavailable: { .noContent })

    // MARK: requests

    func testARequestKeepsItsStartAndSentContinueAcrossReparsesButNotItsRouteFacts() {
        var m = Machine()
        m.headStarted(now: 50)
        m.requestBegins(keepAlive: true, isHEAD: true, speaks11: true, draining: false, now: 60)
        XCTAssertEqual(m.request.start, 50, "timed from its first byte")
        m.request.sentContinue = true
        m.request.envelopeErrors = true
        m.requestBegins(keepAlive: true, isHEAD: true, speaks11: true, draining: false, now: 70)
        XCTAssertEqual(m.request.start, 50)
        XCTAssertTrue(m.request.sentContinue, "the head handled again as its small body arrives")
        XCTAssertFalse(m.request.envelopeErrors, "decided again by the route")
        XCTAssertEqual(m.served, 2)
        XCTAssertEqual(m.nextRequestTimeout, .idle)
        XCTAssertEqual(Machine().nextRequestTimeout, .header, "the first request waits under the header timeout")
    }

    func testPipelinedRequestsAreTakenOneAtATimeAndNotWhileAnswersWaitUnread() {
        var m = machine()
        XCTAssertTrue(m.takesNextRequest(inputEmpty: false, answersBacklogged: false))
        XCTAssertFalse(m.takesNextRequest(inputEmpty: true, answersBacklogged: false))
        XCTAssertFalse(m.takesNextRequest(inputEmpty: false, answersBacklogged: true), "backpressure")
        m.proxyingBegins(1)
        XCTAssertFalse(m.takesNextRequest(inputEmpty: false, answersBacklogged: false), "the one in flight first")
        _ = m.exchangeFinished(unsentBody: nil, draining: false, outputPending: false)
        XCTAssertTrue(m.takesNextRequest(inputEmpty: false, answersBacklogged: false))
        var closing = machine(keepAlive: false)
        _ = closing.requestAnswered(draining: false)
        XCTAssertFalse(closing.takesNextRequest(inputEmpty: false, answersBacklogged: false), "bytes after a closing answer are not read")
    }

    func testContinueIsSentOnceForASmallBodyTheClientWaitsFor() {
        var m = machine()
        XCTAssertFalse(m.continueNeeded(expectContinue: false))
        XCTAssertTrue(m.continueNeeded(expectContinue: true))
        m.requestBegins(keepAlive: true, isHEAD: false, speaks11: true, draining: false, now: 200)  // the head again, more body came
        XCTAssertFalse(m.continueNeeded(expectContinue: true), "once")
    }

    func testADrainingWorkerKeepsNoConnectionAlive() {
        var m = machine(draining: true)
        XCTAssertFalse(m.request.keepAlive)
        XCTAssertTrue(m.requestAnswered(draining: true), "closes once its answer is flushed")
        XCTAssertEqual(m.request.start, 0)
    }

    func testATakeoverKeepsAKeepAlivePromiseAlreadyMadeAndEndsWithTheNextAnswer() {
        // The answer's head went out promising keep-alive: the client may send again at once.
        var promised = machine()
        promised.lastAnswerNext(headWritten: true)
        XCTAssertTrue(promised.request.keepAlive)
        XCTAssertFalse(promised.requestAnswered(draining: false), "kept for the request the client may be sending")
        promised.requestBegins(keepAlive: true, isHEAD: false, speaks11: true, draining: true, now: 300)
        XCTAssertFalse(promised.request.keepAlive, "the next answer says close")
        XCTAssertTrue(promised.requestAnswered(draining: false))
        // No head yet: this answer is the last.
        var unsent = machine()
        unsent.lastAnswerNext(headWritten: false)
        XCTAssertFalse(unsent.request.keepAlive)
        XCTAssertTrue(unsent.requestAnswered(draining: false))
    }

    func testTheBodyOfALocallyAnsweredRequestIsDroppedWhenSmallElseItsAnswerCloses() {
        let m = machine()
        let small = head("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        guard case .discard = m.unreadBody(of: small, bodyRead: false, maxDiscard: 64) else { return XCTFail() }
        guard case .none = m.unreadBody(of: small, bodyRead: true, maxDiscard: 64) else { return XCTFail() }
        guard case .closeAfterAnswer = m.unreadBody(of: small, bodyRead: false, maxDiscard: 5) else { return XCTFail("too large") }
        let chunked = head("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        guard case .discard = m.unreadBody(of: chunked, bodyRead: true, maxDiscard: 64) else { return XCTFail("never read whole") }
        let waiting = head("POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
        guard case .closeAfterAnswer = m.unreadBody(of: waiting, bodyRead: false, maxDiscard: 64) else {
            return XCTFail("a client waiting for 100 Continue may never send it")
        }
        guard case .closeAfterAnswer = machine(keepAlive: false).unreadBody(of: small, bodyRead: false, maxDiscard: 64) else { return XCTFail() }
        guard case .none = m.unreadBody(of: head("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), bodyRead: false, maxDiscard: 64) else { return XCTFail() }
    }

    func testDroppingABodyEndsInTheNextRequestOrALingeringClose() {
        var m = machine()
        let discard = BodyDiscard(.length(10), limit: 64)
        XCTAssertTrue(m.discardBegins(discard))
        XCTAssertFalse(m.discardBegins(discard), "only from awaiting a head")
        guard case .needMore = m.bodyDropped(discard, .needMore), case .discardingBody = m.state else { return XCTFail() }
        guard case .next = m.bodyDropped(discard, .done), m.isAwaitingHead else { return XCTFail() }
        _ = m.discardBegins(discard)
        guard case .linger = m.bodyDropped(discard, .refused) else { return XCTFail() }
        XCTAssertTrue(m.closeAfterFlush)
        var closing = machine(keepAlive: false)
        _ = closing.requestAnswered(draining: false)
        _ = closing.discardBegins(discard)
        guard case .closeWhenFlushed = closing.bodyDropped(discard, .done) else { return XCTFail("no idle wait before a close") }
    }

    func testShutdownWhileABodyIsDroppedClosesOnceItIsDropped() {
        var m = machine()
        let discard = BodyDiscard(.length(10), limit: 64)
        _ = m.discardBegins(discard)
        XCTAssertEqual(m.drain(inputEmpty: false, outputPending: false), .none)
        guard case .closeWhenFlushed = m.bodyDropped(discard, .done) else { return XCTFail("not the next request") }
        XCTAssertFalse(m.takesNextRequest(inputEmpty: false, answersBacklogged: false))
    }

    func testATimerAfterAnAnswerThatEndsTheConnectionClosesWithoutAnotherAnswer() {
        var m = machine(keepAlive: false)
        m.proxyingBegins(1)
        guard case .closeWhenFlushed = m.exchangeFinished(unsentBody: nil, draining: false, outputPending: true) else { return XCTFail() }
        guard case .close = m.timerFired(answersBacklogged: false, partialHead: true) else {
            return XCTFail("pipelined bytes after a closing answer are not a slow head to answer 400")
        }
    }

    // MARK: the proxy

    func testAClientThatClosesBeforeItsRequestIsSentEndsTheExchange() {
        var m = machine()
        m.proxyingBegins(7)
        guard case .closeExchangeAndClose(7) = m.peerDidClose(requestSent: false) else { return XCTFail() }
        XCTAssertTrue(m.peerClosed)
    }

    func testAClientThatHalfClosesAfterItsRequestStillGetsItsAnswerThenTheClose() {
        var m = machine()
        m.proxyingBegins(7)
        guard case .finishAnswer = m.peerDidClose(requestSent: true) else { return XCTFail() }
        XCTAssertFalse(m.request.keepAlive)
        XCTAssertEqual(m.interest(inputHasRoom: true, outputPending: true, answersBacklogged: false, requestSent: true, upstreamHasRoom: true),
                       .write, "not read after its close")
        guard case .closeWhenFlushed = m.exchangeFinished(unsentBody: nil, draining: false, outputPending: true) else { return XCTFail() }
        guard case .close = m.outputDrained() else { return XCTFail() }
    }

    func testAFinishedExchangeKeepsTheConnectionAndDropsTheBodyTheUpstreamDidNotWaitFor() {
        var m = machine()
        m.proxyingBegins(7)
        let unsent = BodyDiscard(.length(5), limit: 64)
        guard case let .next(discard) = m.exchangeFinished(unsentBody: unsent, draining: false, outputPending: false), discard != nil else {
            return XCTFail()
        }
        XCTAssertTrue(m.isAwaitingHead)
        var closing = machine(keepAlive: false)
        closing.proxyingBegins(7)
        guard case .linger = closing.exchangeFinished(unsentBody: unsent, draining: false, outputPending: false) else {
            return XCTFail("the client still sending reads the answer before the close")
        }
        var done = machine()
        done.proxyingBegins(7)
        guard case .close = done.exchangeFinished(unsentBody: nil, draining: true, outputPending: false) else { return XCTFail() }
    }

    func testAFailedExchangeIsAnsweredOnTheConnectionOnlyWhenTheRequestWasReadWhole() {
        var m = machine()
        m.proxyingBegins(7)
        XCTAssertTrue(m.exchangeFailed(requestComplete: true))
        XCTAssertTrue(m.isAwaitingHead)
        m.proxyingBegins(8)
        XCTAssertFalse(m.exchangeFailed(requestComplete: false))
    }

    func testTheAnswerHeadDecidesChunkingAndKeepAlive() {
        var m = machine()
        m.proxyingBegins(7)
        m.answerHeadWritten(chunked: false, keepAlive: false)
        XCTAssertFalse(m.request.keepAlive, "an HTTP/1.0 client learns the end from the close")
        XCTAssertFalse(m.request.responseChunked)
    }

    func testTunnelsAndRetriesMoveTheUpstreamAndClosingHandsItBack() {
        var m = machine()
        m.proxyingBegins(7)
        m.exchangeMoved(to: 8)
        guard case .proxying(8) = m.state else { return XCTFail() }
        m.request.tunnelIdentity = TunnelIdentity(subject: [1], tokenID: [2], loginID: [], issuedAt: 5)
        m.tunnelBegins(8)
        guard case let .tunnel(8, identity) = m.state, identity?.issuedAt == 5 else { return XCTFail() }
        guard case .shutdownUpstreamWrite(8) = m.peerDidClose(requestSent: true) else { return XCTFail("half-close passed on") }
        guard case .tunnelMoves(8) = m.outputDrained() else { return XCTFail() }
        XCTAssertEqual(m.lingers(), 8)
        XCTAssertNil(m.closes(), "nothing left to close")
        XCTAssertTrue(m.isClosed)
    }

    // MARK: pending answers

    func testAPendingAnswerTakesOnlyTheResultOfItsOwnTicket() {
        var m = machine()
        let first = m.pendingBegins(deferred)
        XCTAssertFalse(m.readsNextInput)
        XCTAssertNil(m.workDone(ticket: first &+ 1), "another request's result")
        XCTAssertNotNil(m.workDone(ticket: first))
        XCTAssertNil(m.workDone(ticket: first), "taken once")
        guard case .noContent = m.pendingAnswered(.noContent) else { return XCTFail() }
        XCTAssertTrue(m.isAwaitingHead)
        // The next request's work: a late result of the first never answers it.
        let second = m.pendingBegins(deferred)
        XCTAssertNotEqual(first, second)
        XCTAssertNil(m.workDone(ticket: first))
    }

    func testAHeldAnswerIsGivenWhenItsTimerFiresAndA503WhenTheWorkNeverCame() {
        var m = machine()
        let ticket = m.pendingBegins(deferred)
        _ = m.workDone(ticket: ticket)
        m.holdAnswer(.error(.unauthorized))
        guard case .pendingDue = m.timerFired(answersBacklogged: false, partialHead: false) else { return XCTFail() }
        guard case .error(.unauthorized, _, _) = m.pendingAnswered() else { return XCTFail("the held 401") }
        _ = m.pendingBegins(deferred)
        guard case .error(.serviceUnavailable, _, _) = m.pendingAnswered() else { return XCTFail("the work took too long") }
    }

    // MARK: timers, interest, shutdown

    func testTimersCloseIdleConnectionsCutSlowHeadsAndTimeOutExchanges() {
        var m = Machine()
        guard case .close = m.timerFired(answersBacklogged: false, partialHead: false) else { return XCTFail() }
        guard case .cutSlowHead = m.timerFired(answersBacklogged: false, partialHead: true) else { return XCTFail("slowloris") }
        guard case .close = m.timerFired(answersBacklogged: true, partialHead: true) else {
            return XCTFail("a client that stopped reading its answers gets nothing more")
        }
        m.proxyingBegins(3)
        guard case .exchangeTimedOut(3) = m.timerFired(answersBacklogged: false, partialHead: false) else { return XCTFail() }
        m.tunnelBegins(3)
        guard case .close = m.timerFired(answersBacklogged: false, partialHead: false) else { return XCTFail() }
    }

    func testWhatTheConnectionIsWatchedFor() {
        var m = Machine()
        func interest(room: Bool = true, pending: Bool = false, backlogged: Bool = false, sent: Bool = true, upstreamRoom: Bool = true) -> Interest {
            m.interest(inputHasRoom: room, outputPending: pending, answersBacklogged: backlogged, requestSent: sent, upstreamHasRoom: upstreamRoom)
        }
        XCTAssertEqual(interest(), .read)
        XCTAssertEqual(interest(room: false), [], "a full buffer is never read into")
        XCTAssertEqual(interest(pending: true, backlogged: true), .write, "backpressure: not read while its answers wait")
        m.proxyingBegins(1)
        XCTAssertEqual(interest(sent: false, upstreamRoom: false), [], "the body waits for room upstream")
        XCTAssertEqual(interest(sent: false, upstreamRoom: true), .read)
        XCTAssertEqual(interest(room: true, sent: true), .read, "pipelined bytes may come")
        _ = m.lingers()
        XCTAssertEqual(interest(room: false, pending: true), [.read, .write], "lingering drops input whatever its room")
        _ = m.closes()
        XCTAssertEqual(interest(pending: true), [])
    }

    func testProgressPushesOutTheTimeoutOfWhatIsAwaited() {
        var m = Machine()
        XCTAssertNil(m.progressTimeout(answersBacklogged: false, awaitsAnswerHead: false))
        XCTAssertEqual(m.progressTimeout(answersBacklogged: true, awaitsAnswerHead: false), .idle, "a slow reader")
        m.proxyingBegins(1)
        XCTAssertEqual(m.progressTimeout(answersBacklogged: false, awaitsAnswerHead: true), .response)
        XCTAssertEqual(m.progressTimeout(answersBacklogged: false, awaitsAnswerHead: false), .body)
        m.tunnelBegins(1)
        XCTAssertEqual(m.progressTimeout(answersBacklogged: false, awaitsAnswerHead: false), .idle)
    }

    func testShutdownClosesAnIdleConnectionAndLetsABusyOneFinish() {
        var idle = Machine()
        XCTAssertEqual(idle.drain(inputEmpty: true, outputPending: false), .close)
        var writing = machine()
        _ = writing.requestAnswered(draining: false)
        XCTAssertEqual(writing.drain(inputEmpty: true, outputPending: true), .closeWhenFlushed, "its answer is written first")
        var partial = Machine()
        XCTAssertEqual(partial.drain(inputEmpty: false, outputPending: false), .none)
        XCTAssertFalse(partial.closeAfterFlush, "the request that has begun to arrive is read")
        partial.requestBegins(keepAlive: true, isHEAD: false, speaks11: true, draining: false, now: 10)
        XCTAssertFalse(partial.request.keepAlive, "and answered as the last, with Connection: close")
        XCTAssertTrue(partial.isGoing)
        var busy = machine()
        busy.proxyingBegins(2)
        XCTAssertEqual(busy.drain(inputEmpty: true, outputPending: false), .none)
        XCTAssertFalse(busy.request.keepAlive, "but closes after this answer")
    }

    func testOnlyAConnectionWaitingForARequestOfWhichNothingCameIsIdle() {
        XCTAssertTrue(Machine().isIdle(inputEmpty: true, outputPending: false), "a new connection that has sent nothing")
        var m = machine()
        m.proxyingBegins(7)
        XCTAssertFalse(m.isIdle(inputEmpty: true, outputPending: false), "an exchange in flight")
        _ = m.exchangeFinished(unsentBody: nil, draining: false, outputPending: false)
        XCTAssertTrue(m.isIdle(inputEmpty: true, outputPending: false))
        XCTAssertFalse(m.isIdle(inputEmpty: true, outputPending: true), "its answer not yet written")
        XCTAssertFalse(m.isIdle(inputEmpty: false, outputPending: false), "part of the next request read")
        m.headStarted(now: 500)
        XCTAssertFalse(m.isIdle(inputEmpty: true, outputPending: false), "the next request has begun")
        var closing = machine(keepAlive: false)
        _ = closing.requestAnswered(draining: false)
        XCTAssertFalse(closing.isIdle(inputEmpty: true, outputPending: false), "already closing")
        var asked = Machine()
        _ = asked.drain(inputEmpty: true, outputPending: true)
        XCTAssertFalse(asked.isIdle(inputEmpty: true, outputPending: false), "asked to go already")
    }
}

/// Random sequences of the events a connection can meet while open, against invariants that must
/// hold whatever the order: what decides the connection's end (closing once flushed, the last
/// request, the client's close) is never undone, a connection asked to go keeps no request alive,
/// and an idle one is waiting for a head and going nowhere.
final class ClientConnectionStateSequenceTests: XCTestCase {
    typealias Machine = ClientConnectionState<Int>

    func testRandomEventSequencesKeepTheConnectionsInvariants() {
        var rng = SeededRandom(seed: 0xD1B5_4A32_D192_ED03)
        let work = DeferredAnswer(consumed: 0, job: { true }, finish: { _ in (.noContent, 0) }, unavailable: { .noContent })
        for _ in 0..<3000 {
            var m = Machine()
            var closing = false, last = false, peerClosed = false
            for _ in 0..<(1 + rng.next(24)) {
                let flag = { rng.next(2) == 0 }
                switch rng.next(14) {
                case 0: m.headStarted(now: UInt64(rng.next(1000)))
                case 1: m.requestBegins(keepAlive: flag(), isHEAD: flag(), speaks11: flag(), draining: false, now: 5)
                case 2: if m.isAwaitingHead { m.proxyingBegins(7) }
                case 3: if m.isAwaitingHead { _ = m.pendingBegins(work) }
                case 4: _ = m.workDone(ticket: UInt64(rng.next(3)))
                case 5: if case .pending = m.state { _ = m.pendingAnswered() }
                case 6: _ = m.requestAnswered(draining: false)
                case 7: if case .proxying = m.state { _ = m.exchangeFinished(unsentBody: nil, draining: false, outputPending: flag()) }
                case 8: if case .proxying = m.state { _ = m.exchangeFailed(requestComplete: flag()) }
                case 9: _ = m.drain(inputEmpty: flag(), outputPending: flag()); last = true
                case 10: _ = m.peerDidClose(requestSent: flag()); peerClosed = true
                case 11: if m.isAwaitingHead { _ = m.discardBegins(BodyDiscard(.length(10), limit: 64)) }
                case 12:
                    if case let .discardingBody(d) = m.state {
                        _ = m.bodyDropped(d, [BodyDiscard.Outcome.needMore, .done, .refused][rng.next(3)])
                    }
                default: _ = m.lingers()
                }
                if closing { XCTAssertTrue(m.closeAfterFlush, "closing once flushed is never undone") }
                if last {
                    XCTAssertTrue(m.isGoing, "asked to go stays asked")
                    XCTAssertFalse(m.request.keepAlive, "a connection asked to go keeps no request alive")
                }
                if peerClosed { XCTAssertTrue(m.peerClosed) }
                if m.isIdle(inputEmpty: true, outputPending: false) {
                    XCTAssertTrue(m.isAwaitingHead)
                    XCTAssertFalse(m.isGoing || m.peerClosed || m.closeAfterFlush)
                }
                closing = m.closeAfterFlush
            }
        }
    }
}
