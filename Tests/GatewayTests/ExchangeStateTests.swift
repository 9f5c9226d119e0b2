import XCTest
@testable import Gateway

/// The decisions of one upstream exchange, without a socket: when it may be replayed, when its
/// connection may carry another request, what it waits for, what is left of its request body.
final class ExchangeStateTests: XCTestCase {
    private func bodyless(kept: Int = 40) -> ExchangeState {
        ExchangeState(limits: HTTPLimits(), body: .none, maxBody: 1000, tunnel: false, keptHeadLength: kept)
    }

    private func answered(_ body: BodyFraming, keepAlive: Bool = true) -> ExchangeState {
        var e = bodyless()
        _ = e.answerBytesArrived()
        e.responseHeadDone = true
        e.responseStarted = true
        e.responseBody = body
        e.responseKeepAlive = keepAlive
        return e
    }

    func testABodylessRequestIsSentWholeAndWaitsForItsAnswer() {
        let e = bodyless()
        XCTAssertTrue(e.requestComplete)
        XCTAssertEqual(e.wait(connecting: true), .connect)
        XCTAssertEqual(e.wait(connecting: false), .response)
        XCTAssertTrue(e.awaitsAnswerHead)
        XCTAssertNil(e.unsentBody)
    }

    func testARequestWithABodyWaitsForItUnderTheBodyTimeout() {
        let e = ExchangeState(limits: HTTPLimits(), body: .length(10), maxBody: 1000, tunnel: false, keptHeadLength: 0)
        XCTAssertFalse(e.requestComplete)
        XCTAssertEqual(e.wait(connecting: false), .body)
        XCTAssertFalse(e.awaitsAnswerHead)
    }

    func testAReplayIsAllowedOnlyForAKeptHeadOnAPooledConnectionBeforeAnyAnswerByte() {
        XCTAssertTrue(bodyless().mayReplay(reused: true))
        XCTAssertFalse(bodyless().mayReplay(reused: false), "a fresh connection's failure is the upstream's")
        XCTAssertFalse(bodyless(kept: 0).mayReplay(reused: true), "not idempotent, or it had a body")
        var started = bodyless()
        XCTAssertTrue(started.answerBytesArrived(), "the kept head goes with the first answer byte")
        XCTAssertEqual(started.keptHeadLength, 0)
        XCTAssertFalse(started.mayReplay(reused: true), "the upstream said something: a replay could run it twice")
        XCTAssertFalse(started.answerBytesArrived(), "only once")
    }

    func testAReplayCarriesTheSameRequestWholeAndCannotBeReplayedAgain() {
        var e = ExchangeState(limits: HTTPLimits(requestLineBytes: 100, headerBytes: 200, maxHeaderFields: 3), body: .none,
                              maxBody: 7, tunnel: true, keptHeadLength: 40)
        e.eof = true
        let fresh = e.replayed
        XCTAssertTrue(fresh.requestComplete)
        XCTAssertTrue(fresh.tunnelRequested)
        XCTAssertEqual(fresh.limits.headerBytes, 200)
        XCTAssertFalse(fresh.eof)
        XCTAssertFalse(fresh.mayReplay(reused: true))
    }

    func testAConnectionIsReusedOnlyAfterACompleteFramedAnswerToAWholeRequest() {
        XCTAssertTrue(answered(.length(0)).reusable(leftover: false))
        XCTAssertTrue(answered(.chunked(ChunkedDecoder())).reusable(leftover: false))
        XCTAssertFalse(answered(.length(0)).reusable(leftover: true), "bytes past the answer")
        XCTAssertFalse(answered(.none).reusable(leftover: false), "HEAD, 204, 304: stray bytes could follow")
        XCTAssertFalse(answered(.untilClose).reusable(leftover: false))
        XCTAssertFalse(answered(.length(0), keepAlive: false).reusable(leftover: false))
        var closed = answered(.length(0))
        closed.eof = true
        XCTAssertFalse(closed.reusable(leftover: false))
        var early = answered(.length(0))
        early.requestComplete = false
        XCTAssertFalse(early.reusable(leftover: false), "the upstream would read the rest of the body as a request")
    }

    func testInterimAnswersAreSkippedAnUnaskedUpgradeIsRefusedAndAnAskedOneTunnels() {
        var e = bodyless()
        XCTAssertEqual(e.answerHeadParsed(status: 100, framing: .none), .skip)
        XCTAssertEqual(e.answerHeadParsed(status: 103, framing: .none), .skip)
        XCTAssertEqual(e.answerHeadParsed(status: 101, framing: .none), .refuse, "nobody asked to upgrade")
        XCTAssertFalse(e.responseStarted)
        var upgrade = ExchangeState(limits: HTTPLimits(), body: .none, maxBody: 0, tunnel: true, keptHeadLength: 0)
        XCTAssertEqual(upgrade.answerHeadParsed(status: 101, framing: .none), .upgrade)
        XCTAssertTrue(upgrade.tunneling && upgrade.responseStarted)
    }

    func testAnAnswerIsRelayedWithTheFramingTheClientNeedsAndStartsOnceTaken() {
        var e = bodyless()
        XCTAssertEqual(e.answerHeadParsed(status: 200, framing: .contentLength(5)), .relay(.length(5)))
        XCTAssertEqual(e.answerHeadParsed(status: 200, framing: .chunked), .relay(.unknown))
        XCTAssertEqual(e.answerHeadParsed(status: 200, framing: .untilClose), .relay(.unknown))
        XCTAssertEqual(e.answerHeadParsed(status: 304, framing: .none), .relay(.none))
        XCTAssertFalse(e.responseStarted, "not before the client side took the head")
        e.answerHeadRelayed(framing: .chunked, keepAlive: true)
        XCTAssertTrue(e.responseStarted && e.responseHeadDone && !e.awaitsAnswerHead)
        guard case .chunked = e.responseBody else { return XCTFail() }
    }

    func testAFailureCutsTheClientAfterTheAnswerBeganAndIsReplayedOrAnsweredBefore() {
        var e = bodyless()
        XCTAssertEqual(e.failed(reused: true), .replay)
        XCTAssertEqual(e.failed(reused: false), .answerError)
        XCTAssertEqual(e.timedOut, .answerError, "504")
        e.answerHeadRelayed(framing: .contentLength(10), keepAlive: true)
        XCTAssertEqual(e.failed(reused: true), .cutClient)
        XCTAssertEqual(e.timedOut, .cutClient)
    }

    func testTheBodyLeftAfterAnEarlyAnswerIsWhatTheClientStillOwes() throws {
        var e = ExchangeState(limits: HTTPLimits(), body: .length(100), maxBody: 1000, tunnel: false, keptHeadLength: 0)
        e.requestBody = .length(60)
        e.requestBodyBytes = 40
        let left = try XCTUnwrap(e.unsentBody)
        var buffer = [UInt8](repeating: 0x41, count: 80)
        buffer.withUnsafeMutableBytes { raw in
            var b = ByteBuffer(base: raw.baseAddress!, capacity: raw.count)
            b.writerIndex = 80
            var discard = left
            XCTAssertEqual(discard.drop(from: &b), .done)
            XCTAssertEqual(b.readableBytes, 20, "60 bytes were owed, the next 20 are the next request's")
        }
    }
}
