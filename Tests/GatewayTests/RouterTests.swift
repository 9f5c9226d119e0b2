import XCTest
@testable import Gateway

/// `Router.checkTarget`: the path the gateway matches is the path the upstream serves.
final class RouterTests: XCTestCase {
    private func check(_ target: String) -> Int? {
        Array(target.utf8).withUnsafeBytes { try? Router.checkTarget($0) }
    }

    func testPlainPathsAndQueriesAreAccepted() {
        XCTAssertEqual(check("/api/v3/x"), 9)
        XCTAssertEqual(check("/api/v3/x?a=../b"), 9, "the query is not a path")
        XCTAssertNotNil(check("/api/v3/a.b/..c/...d/.e;f"))
        XCTAssertNotNil(check("/api/v3/caf%c3%a9/%e0%a4%85/%f0%9f%98%80"), "valid multi-byte UTF-8")
        XCTAssertNotNil(check("/api/v3/a%20b"))
    }

    func testDotSegmentsAreRefusedAlsoWithParameters() {
        for t in ["/a/../b", "/a/./b", "/a/..", "/a/.", "/a/..;/b", "/a/.;x/b", "/a/..;", "/..;/a"] {
            XCTAssertNil(check(t), t)
        }
    }

    func testEncodedSeparatorsDotsAndOverlongFormsAreRefused() {
        for t in ["/a%2e%2e/b", "/a%2Fb", "/a%5cb", "/a%252e", "/a%c0%ae", "/a%c0%af", "/a%C1%81", "/a%e0%80%ae",
                  "/a%e0%9f%bf", "/a%f0%80%80%ae", "/a%f0%8f%bf%bf", "/a%e0", "/a%e0x", "/a%zz", "/a%2", "/a\\b", "//a"] {
            XCTAssertNil(check(t), t)
        }
    }
}
