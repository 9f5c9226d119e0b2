import Glibc
import XCTest
@testable import Gateway

/// The loop's registrations: what a socket is watched for, said as an `Interest`, and a refusal
/// by the kernel reported to the caller instead of ending the worker.
final class EventLoopTests: XCTestCase {
    private func events(_ loop: EventLoop) -> [IOEvents] {
        var seen: [IOEvents] = []
        loop.wait(maxWaitMs: 0) { _, e in seen.append(e) }
        return seen
    }

    func testARegistrationTheKernelRefusesIsAnErrorAndTheLoopGoesOn() throws {
        let loop = try EventLoop()
        let (a, b) = try Socket.pair()
        defer { loop.close(a); b.close() }
        let generation = try loop.register(a, interest: .read, handler: .listener(a, tls: false))
        // A second ADD of the same socket is refused (EEXIST), as ENOMEM would be in a full kernel.
        XCTAssertThrowsError(try loop.register(a, interest: .read, handler: .wakeup)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EEXIST)
        }
        XCTAssertEqual(loop.generation(of: a.slot), generation, "the refusal changed nothing")
        guard case .listener(_, _)? = loop.handler(a.slot, generation: generation) else { return XCTFail("the first registration stands") }

        XCTAssertTrue(events(loop).isEmpty)
        XCTAssertTrue(b.sendAll(Array("x".utf8)))
        let seen = events(loop)
        XCTAssertEqual(seen.count, 1)
        XCTAssertTrue(seen.first?.readable ?? false)
        XCTAssertFalse(seen.first?.writable ?? true)
    }

    func testInterestDecidesWhatIsReported() throws {
        let loop = try EventLoop()
        let (a, b) = try Socket.pair()
        defer { loop.close(a) }
        try loop.register(a, interest: [], handler: .listener(a, tls: false))
        XCTAssertTrue(events(loop).isEmpty, "nothing asked, nothing told")
        try loop.setInterest(a, .write)
        XCTAssertTrue(events(loop).first?.writable ?? false, "an empty socket has room")
        try loop.setInterest(a, [])
        XCTAssertTrue(events(loop).isEmpty)
        b.close()
        try loop.setInterest(a, .write)
        XCTAssertTrue(events(loop).first?.failed ?? false, "the peer is gone")
    }

    func testAClosedSocketsEventsAndTimersGoStale() throws {
        let loop = try EventLoop()
        let (a, b) = try Socket.pair()
        defer { b.close() }
        let generation = try loop.register(a, interest: .read, handler: .listener(a, tls: false))
        XCTAssertTrue(b.sendAll(Array("x".utf8)))
        loop.close(a)
        XCTAssertNil(loop.handler(a.slot, generation: generation))
        XCTAssertTrue(events(loop).isEmpty, "nothing is reported for a closed socket")
    }
}
