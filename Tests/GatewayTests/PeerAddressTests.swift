import Glibc
import XCTest
@testable import Gateway

/// A client's address as text (X-Forwarded-For, the access log): IPv4 is written digit by digit,
/// and must read exactly as libc's inet_ntop has it.
final class PeerAddressTests: XCTestCase {
    private func peer(_ octets: [UInt8]) -> PeerAddress {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.storeBytes(of: sa_family_t(AF_INET), as: sa_family_t.self)
            for (i, o) in octets.enumerated() { raw[4 + i] = o }
        }
        return PeerAddress(storage)
    }

    private func libcText(_ octets: [UInt8]) -> String {
        var text = [CChar](repeating: 0, count: 64)
        _ = octets.withUnsafeBytes { inet_ntop(AF_INET, $0.baseAddress!, &text, 64) }
        return String(cString: text)
    }

    func testIPv4TextIsWhatInetNtopWrites() {
        var samples: [[UInt8]] = [[0, 0, 0, 0], [255, 255, 255, 255], [127, 0, 0, 1], [10, 0, 100, 7], [9, 99, 100, 199]]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 { samples.append((0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) }) }
        for octets in samples {
            XCTAssertEqual(peer(octets).text, libcText(octets))
        }
    }

    func testIPv4TextIsWrittenWholeOrNotAtAll() {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 7, alignment: 1)
        defer { memory.deallocate() }
        var small = ByteBuffer(base: memory, capacity: 7)
        XCTAssertFalse(peer([10, 2, 3, 4]).append(to: &small), "8 bytes")
        XCTAssertEqual(small.writerIndex, 0, "nothing written")
        XCTAssertTrue(peer([1, 2, 3, 4]).append(to: &small), "7 bytes fit")
        XCTAssertEqual(Array(small.readable), Array("1.2.3.4".utf8))
    }
}
