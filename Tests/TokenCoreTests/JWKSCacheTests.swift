import TokenCore
import XCTest

/// When an IdP's key set is fetched again; time is passed in.
final class JWKSCacheTests: XCTestCase {
    func testFreshnessFollowsMaxAgeWithinTheBounds() {
        let p = JWKSCache.Policy()
        XCTAssertEqual(p.lifetime(cacheControl: "public, max-age=7200"), 7200)
        XCTAssertEqual(p.lifetime(cacheControl: "Max-Age = \"900\" , must-revalidate"), 900, "case, spaces and quotes")
        XCTAssertEqual(p.lifetime(cacheControl: "max-age=5"), 300, "never under the minimum")
        XCTAssertEqual(p.lifetime(cacheControl: "max-age=31536000"), 86_400, "never over the maximum")
        XCTAssertEqual(p.lifetime(cacheControl: "max-age=99999999999999999999999"), 86_400, "a number too large is the maximum")
        XCTAssertEqual(p.lifetime(cacheControl: "no-store"), 300)
        XCTAssertEqual(p.lifetime(cacheControl: "max-age=600, no-cache"), 300)
        XCTAssertEqual(p.lifetime(cacheControl: "max-age=-1"), 3600, "not a number: the default")
        XCTAssertEqual(p.lifetime(cacheControl: "max-age=1e3"), 3600)
        XCTAssertEqual(p.lifetime(cacheControl: "private"), 3600)
        XCTAssertEqual(p.lifetime(cacheControl: nil), 3600)
        for odd in ["=", "==", ",=,", "max-age=", "=max-age", " , ,"] {
            XCTAssertEqual(p.lifetime(cacheControl: odd), 3600, "'\(odd)'")
        }
    }

    func testTheSetIsRefreshedInTheBackgroundBeforeItGoesStale() {
        var c = JWKSCache()
        XCTAssertTrue(c.refreshDue(at: 1000), "nothing fetched yet")
        c.fetched(at: 1000, cacheControl: "max-age=1000")
        XCTAssertEqual(c.freshUntil, 2000)
        XCTAssertFalse(c.refreshDue(at: 1749))
        XCTAssertTrue(c.refreshDue(at: 1750), "at three quarters of its freshness")
    }

    func testAFailedFetchIsRetriedAfterABackoffThatDoublesUpToTheMinimum() {
        var c = JWKSCache()
        c.fetched(at: 0, cacheControl: "max-age=400")
        var now: Int64 = 300
        var waits: [Int64] = []
        for _ in 0..<6 {
            c.fetchFailed(at: now)
            var t = now
            while !c.refreshDue(at: t) { t += 1 }
            waits.append(t - now)
            now = t
        }
        XCTAssertEqual(waits, [30, 60, 120, 240, 300, 300])
        XCTAssertEqual(c.fetchedAt, 0, "the keys held stay in use")
        c.fetched(at: now, cacheControl: nil)
        XCTAssertFalse(c.refreshDue(at: now + 1), "a success ends the backoff")
    }

    func testUnknownKidsCauseAtMostOneFetchPerCooldown() {
        var c = JWKSCache()
        c.fetched(at: 0, cacheControl: nil)
        XCTAssertTrue(c.mayFetchForUnknownKid(at: 100))
        for t in Int64(100)..<130 { XCTAssertFalse(c.mayFetchForUnknownKid(at: t), "\(t): within the cooldown") }
        XCTAssertTrue(c.mayFetchForUnknownKid(at: 130))
        c.fetchFailed(at: 130)
        c.fetchFailed(at: 140)  // the second failure in a row: the next try waits 60 s
        XCTAssertFalse(c.mayFetchForUnknownKid(at: 170), "nor while a failed fetch waits for its retry")
        XCTAssertTrue(c.mayFetchForUnknownKid(at: 200))
    }
}
