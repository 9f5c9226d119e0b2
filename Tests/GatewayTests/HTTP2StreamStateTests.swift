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
