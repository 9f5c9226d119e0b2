import XCTest
@testable import Gateway

/// An HTTP/2 stream's state, transition by transition, without a session or a socket. The
/// upstream handle is a plain number here.
final class HTTP2StreamStateTests: XCTestCase {
    typealias State = HTTP2StreamState<Int>

    private func deferred(delayMs: UInt64 = 0) -> DeferredAnswer {
        DeferredAnswer(consumed: 0, job: { true }, finish: { ok in (ok ? .noContent : .error(.unauthorized), delayMs) },
                       unavailable: { .error(.serviceUnavailable) })
    }

    private func proxying(tunnel: Bool = false, endStream: Bool = false) -> State {
        var s = State()
        _ = s.headersEnded(endStream: endStream, failure: nil, ownEndpoint: false, expectsContinue: false, lengthKnown: true)
        s.proxyingBegins(7, tunnel: tunnel)
        return s
    }

    // MARK: the head

    func testTheHeadDecidesHowTheRequestGoesOn() {
        var refused = State()
        guard case .refuse(.malformed) = refused.headersEnded(endStream: true, failure: .malformed, ownEndpoint: false,
                                                               expectsContinue: false, lengthKnown: false) else { return XCTFail() }
        var own = State()
        guard case .gatherBody(sendContinue: true) = own.headersEnded(endStream: false, failure: nil, ownEndpoint: true,
                                                                      expectsContinue: true, lengthKnown: true) else { return XCTFail() }
        guard case .awaitingBody = own.phase else { return XCTFail("its small body is awaited") }
        var noBody = State()
        guard case .dispatch(.asSent) = noBody.headersEnded(endStream: true, failure: nil, ownEndpoint: false,
                                                            expectsContinue: false, lengthKnown: false) else { return XCTFail() }
        XCTAssertTrue(noBody.requestComplete)
        var unknown = State()
        guard case .dispatch(.chunked) = unknown.headersEnded(endStream: false, failure: nil, ownEndpoint: false,
                                                              expectsContinue: false, lengthKnown: false) else {
            return XCTFail("a body of unknown length goes up chunked")
        }
        unknown.proxyingBegins(7, tunnel: false)
        guard case .ignore = unknown.headersEnded(endStream: true, failure: nil, ownEndpoint: false, expectsContinue: false,
                                                  lengthKnown: false) else { return XCTFail("a trailer block is not a head") }
    }

    func testAnOwnEndpointGathersItsBodyAndGoesOnAtItsEnd() {
        var s = State()
        _ = s.headersEnded(endStream: false, failure: nil, ownEndpoint: true, expectsContinue: false, lengthKnown: true)
        guard case .gather = s.dataArrived() else { return XCTFail() }
        guard case .dispatchGathered = s.requestEnded() else { return XCTFail() }
        XCTAssertTrue(s.requestComplete)
    }

    // MARK: the body

    func testDataGoesToTheExchangeOrIsDroppedOnceTheStreamIsAnswered() {
        var s = proxying()
        guard case .forward(7) = s.dataArrived() else { return XCTFail() }
        guard case .bodyComplete(7) = s.requestEnded() else { return XCTFail() }
        s.exchangeEnded()
        guard case .answering = s.phase else { return XCTFail() }
        guard case .drop = s.dataArrived() else { return XCTFail("an answered stream drops DATA (its window given back)") }
    }

    func testATunnelHoldsTheClientsBytesUntilTheUpstreamAcceptsIt() {
        var s = proxying(tunnel: true)
        guard case .tunnel(7, open: false) = s.dataArrived() else { return XCTFail() }
        guard case .none = s.requestEnded() else { return XCTFail("not passed on before the upgrade is answered") }
        s.tunnelAccepted()
        guard case .tunnel(7, open: true) = s.dataArrived() else { return XCTFail() }
        XCTAssertFalse(s.halfClosesUpstream(clientBytesPending: true), "bytes still to go up first")
        XCTAssertTrue(s.halfClosesUpstream(clientBytesPending: false))
        XCTAssertFalse(s.halfClosesUpstream(clientBytesPending: false), "once")
        guard case .tunnel(7) = s.answerHasRoom() else { return XCTFail("room moves tunnel bytes") }
    }

    func testARetryMovesTheExchangeAndEndingItForgetsTheUpstream() {
        var s = proxying()
        s.exchangeMoved(to: 8)
        XCTAssertEqual(s.upstream, 8)
        s.exchangeEnded()
        XCTAssertNil(s.upstream)
        s.exchangeMoved(to: 9)
        XCTAssertNil(s.upstream, "a stream without an exchange gets none back")
    }

    // MARK: the answer

    func testTheDataSourceDefersWhenNothingIsReadyAndIsResumedOnce() {
        var s = proxying(endStream: true)
        guard case .deferred = s.answerRead(count: 0, bufferEmpty: true) else { return XCTFail() }
        XCTAssertTrue(s.takeAnswerWaiting())
        XCTAssertFalse(s.takeAnswerWaiting(), "resumed once")
        guard case .more(drained: true) = s.answerRead(count: 100, bufferEmpty: true) else {
            return XCTFail("the upstream reads on after the send")
        }
        s.answerIsWhole()
        guard case .ended(drained: false) = s.answerRead(count: 0, bufferEmpty: true) else { return XCTFail() }
    }

    func testAnAnswerThatEndsBeforeTheRequestResetsTheRestWithNoError() {
        var s = proxying()
        s.answerIsWhole()
        guard case .ended(drained: true) = s.answerRead(count: 10, bufferEmpty: true) else { return XCTFail() }
        guard case .resetNoError = s.answerHasRoom() else { return XCTFail() }
        guard case .readOn(7) = s.answerHasRoom() else { return XCTFail("reset once") }
        var whole = proxying(endStream: true)
        XCTAssertFalse(whole.answered(), "a request sent whole needs no reset")
    }

    func testALocalAnswerEndsTheWayOfTheRequest() {
        var s = State()
        _ = s.headersEnded(endStream: true, failure: nil, ownEndpoint: false, expectsContinue: false, lengthKnown: false)
        s.answerSubmitted()
        XCTAssertTrue(s.answerComplete)
        guard case .answering = s.phase else { return XCTFail() }
        guard case .none = s.answerHasRoom() else { return XCTFail() }
    }

    // MARK: pending work

    func testPendingWorkTakesOnlyItsOwnTicketAndMayHoldItsAnswer() {
        var s = State()
        s.pendingBegins(ticket: 4, work: deferred())
        guard case .stale = s.workDone(ticket: 5, ok: true) else { return XCTFail("another stream's result") }
        guard case .respond(.noContent) = s.workDone(ticket: 4, ok: true) else { return XCTFail() }
        var delayed = State()
        delayed.pendingBegins(ticket: 1, work: deferred(delayMs: 900))
        guard case .hold(delayMs: 900) = delayed.workDone(ticket: 1, ok: false) else { return XCTFail() }
        guard case .stale = delayed.workDone(ticket: 1, ok: false) else { return XCTFail("taken once") }
        guard case .respond(.error(.unauthorized, _, _)) = delayed.timerFired() else { return XCTFail("the held answer at the timer") }
        var slow = State()
        slow.pendingBegins(ticket: 1, work: deferred())
        guard case .respond(.error(.serviceUnavailable, _, _)) = slow.timerFired() else { return XCTFail("the work never came") }
    }

    // MARK: time, ending

    func testATimerCancelsAWaitForTheClientAndTimesAnExchangeOut() {
        guard case .cancel = State().timerFired() else { return XCTFail("a head that never ends") }
        guard case .exchangeTimedOut(7) = proxying().timerFired() else { return XCTFail() }
        var done = proxying()
        _ = done.reset()
        guard case .none = done.timerFired() else { return XCTFail() }
    }

    func testEndingAStreamHandsBackItsExchangeAndSaysWhoCutIt() {
        var reset = proxying()
        XCTAssertEqual(reset.reset(), 7)
        XCTAssertNil(reset.upstream)
        var cut = proxying()
        let closed = cut.closed(byError: false)
        XCTAssertEqual(closed.close, 7)
        XCTAssertTrue(closed.cutByClient, "closed while the exchange ran")
        var answered = proxying()
        answered.exchangeEnded()
        XCTAssertFalse(answered.closed(byError: false).cutByClient, "a normal end")
        var aborted = proxying()
        aborted.exchangeEnded()
        XCTAssertTrue(aborted.closed(byError: true).cutByClient, "reset by the client while its answer went out")
        var ending = proxying()
        XCTAssertEqual(ending.connectionEnds(), 7)
        guard case .done = ending.phase else { return XCTFail() }
    }
}

/// Random sequences of the events a stream can meet, in any order, against invariants that must
/// hold whatever the order: an ended stream stays ended and does nothing more, what the client
/// finished stays finished, and the reset that follows an early answer is asked for once.
final class HTTP2StreamStateSequenceTests: XCTestCase {
    typealias State = HTTP2StreamState<Int>

    func testRandomEventSequencesKeepTheStreamsInvariants() {
        var rng = SeededRandom(seed: 0x9E37_79B9_7F4A_7C15)
        let work = DeferredAnswer(consumed: 0, job: { true }, finish: { _ in (.noContent, 0) }, unavailable: { .noContent })
        for _ in 0..<3000 {
            var s = State()
            var ended = false, requestDone = false, answerDone = false, resetsOwed = 0
            for _ in 0..<(1 + rng.next(24)) {
                switch rng.next(15) {
                case 0: _ = s.headersEnded(endStream: rng.next(2) == 0, failure: rng.next(6) == 0 ? .malformed : nil,
                                           ownEndpoint: rng.next(3) == 0, expectsContinue: rng.next(2) == 0, lengthKnown: rng.next(2) == 0)
                case 1: if !ended, case .headers = s.phase { s.proxyingBegins(7, tunnel: rng.next(4) == 0) }
                case 2: if !ended, case .headers = s.phase { s.pendingBegins(ticket: 1, work: work) }
                case 3: if !ended { s.answerSubmitted() }
                case 4: if case .drop = s.dataArrived() {} else { XCTAssertFalse(ended, "an ended stream takes no DATA") }
                case 5: _ = s.requestEnded()
                case 6:
                    if case .ended(drained: true) = s.answerRead(count: rng.next(3), bufferEmpty: rng.next(2) == 0) { resetsOwed += 1 }
                case 7:
                    if case .resetNoError = s.answerHasRoom() {
                        XCTAssertGreaterThan(resetsOwed, 0, "a reset only after an answer that beat its request")
                        resetsOwed = 0
                    }
                case 8: if ended, case .none = s.timerFired() {} else if ended { XCTFail("a timer on an ended stream acted") }
                case 9: _ = s.reset(); ended = true
                case 10: _ = s.closed(byError: rng.next(2) == 0); ended = true
                case 11: _ = s.connectionEnds(); ended = true
                case 12: s.exchangeEnded()
                case 13: if case .respond = s.workDone(ticket: UInt64(rng.next(2)), ok: true) { XCTAssertFalse(ended) }
                default: s.answerIsWhole()
                }
                if ended {
                    guard case .done = s.phase else { return XCTFail("an ended stream left .done: \(s.phase)") }
                    XCTAssertNil(s.upstream, "an ended stream holds no exchange")
                }
                if requestDone { XCTAssertTrue(s.requestComplete, "the client's end is never undone") }
                if answerDone { XCTAssertTrue(s.answerComplete, "a whole answer is never undone") }
                requestDone = s.requestComplete
                answerDone = s.answerComplete
            }
        }
    }
}
