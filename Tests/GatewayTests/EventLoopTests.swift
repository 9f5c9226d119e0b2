import Glibc
import XCTest
@testable import Gateway

/// The loop's registrations: what a descriptor is watched for, said as an `Interest`, and a
/// refusal by the kernel reported to the caller instead of ending the worker.
final class EventLoopTests: XCTestCase {
    private func events(_ loop: EventLoop) -> [(Int32, IOEvents)] {
        var seen: [(Int32, IOEvents)] = []
        loop.wait(maxWaitMs: 0) { _, fd, e in seen.append((fd, e)) }
        return seen
    }

    func testARegistrationTheKernelRefusesIsAnErrorAndTheLoopGoesOn() throws {
        let loop = try EventLoop()
        // epoll cannot watch a regular file: EPERM, as ENOMEM would be in a full kernel.
        let file = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
        defer { close(file) }
        XCTAssertThrowsError(try loop.register(file, interest: .read, handler: .wakeup)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EPERM)
        }
        XCTAssertNil(loop.handler(file, generation: loop.generation(of: file)), "nothing registered")

        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        defer { close(fds[0]); close(fds[1]) }
        try loop.register(fds[0], interest: .read, handler: .wakeup)
        XCTAssertTrue(events(loop).isEmpty)
        XCTAssertEqual(write(fds[1], "x", 1), 1)
        let seen = events(loop)
        XCTAssertEqual(seen.map(\.0), [fds[0]])
        XCTAssertTrue(seen.first?.1.readable ?? false)
        XCTAssertFalse(seen.first?.1.writable ?? true)
    }

    func testInterestDecidesWhatIsReported() throws {
        let loop = try EventLoop()
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        defer { close(fds[0]); close(fds[1]) }
        try loop.register(fds[1], interest: [], handler: .wakeup)
        XCTAssertTrue(events(loop).isEmpty, "nothing asked, nothing told")
        try loop.setInterest(fds[1], .write)
        XCTAssertTrue(events(loop).first?.1.writable ?? false, "an empty pipe has room")
        try loop.setInterest(fds[1], [])
        XCTAssertTrue(events(loop).isEmpty)
        close(fds[0])
        fds[0] = -1
        try loop.setInterest(fds[1], .write)
        XCTAssertTrue(events(loop).first?.1.failed ?? false, "the reader is gone")
    }
}
