@testable import RingProxy
import XCTest

/// Every input of the routing fuzzers' corpora (Tests/Fuzz/clienthello-corpus and proxyheader-corpus: seeds,
/// and each crash the fuzzers found, once fixed) and the recorded captures they start from, taken as the
/// fuzz targets take them: an answer without a trap, that no longer input changes (a prefix found invalid
/// stays invalid, a prefix found done stays the same). `make fuzz-routing` explores from these.
final class RoutingCorpusTests: XCTestCase {
    private func inputs(_ corpus: String, _ captures: String) throws -> [(name: String, bytes: [UInt8])] {
        let seeds = try RoutingFixtures.files(in: RoutingFixtures.fuzz.appendingPathComponent(corpus))
        let recorded = try RoutingFixtures.files(in: RoutingFixtures.captures.appendingPathComponent(captures))
        XCTAssertGreaterThan(seeds.count, 10, corpus)
        return seeds + recorded
    }

    func testClientHelloCorpusAnswersConsistently() throws {
        var answers: [String: Int] = [:]
        for (name, bytes) in try inputs("clienthello-corpus", "ClientHello") {
            // As sent, and (what the fuzz target also does) the bytes after the first framed into records of the
            // size that byte gives.
            var framed: [UInt8] = []
            if bytes.count > 1 {
                framed = TLSBuilder.records(Array(bytes[1...]), size: bytes[0] == 0 ? 16_384 : Int(bytes[0]))
            }
            for (form, input) in [("sent", bytes), ("framed", framed)] where !input.isEmpty {
                let whole = ClientHelloReader.parse(input)
                answers["\(whole)".prefix(4).description, default: 0] += 1
                if case .done(let hello, let consumed) = whole {
                    XCTAssertEqual(consumed, 0, name)
                    if let serverName = hello.serverName { XCTAssertTrue(ServerNamePattern(serverName)?.matches(serverName) == true, name) }
                }
                assertPrefixesAgree(input, whole, "\(name) \(form)", ClientHelloReader.parse)
            }
        }
        XCTAssertEqual(answers.keys.sorted(), ["done", "inva", "need"], "the corpus reaches every answer: \(answers)")
    }

    func testProxyHeaderCorpusAnswersConsistently() throws {
        var answers: [String: Int] = [:]
        for (name, bytes) in try inputs("proxyheader-corpus", "ProxyHeader") {
            let whole = ProxyHeaderReader.parse(bytes)
            answers["\(whole)".prefix(4).description, default: 0] += 1
            if case .done(let header, let consumed) = whole {
                XCTAssertTrue(consumed > 0 && consumed <= min(bytes.count, ProxyHeaderReader.maximumLength), name)
                XCTAssertEqual(header.source == nil, header.destination == nil, name)
                XCTAssertEqual(ProxyHeaderReader.parse(bytes[..<(consumed - 1)]), .needMore, name)
            }
            assertPrefixesAgree(bytes, whole, name, ProxyHeaderReader.parse)
        }
        XCTAssertEqual(answers.keys.sorted(), ["done", "inva"], "the corpus holds headers and non-headers: \(answers)")
    }

    private func assertPrefixesAgree<Value: Equatable>(
        _ bytes: [UInt8], _ whole: ParseOutcome<Value>, _ name: String, _ parse: (ArraySlice<UInt8>) -> ParseOutcome<Value>
    ) {
        for length in 0..<bytes.count {
            switch parse(bytes[..<length]) {
            case .needMore:
                continue
            case .invalid:
                guard whole.isInvalid else { return XCTFail("\(name): cut at \(length) is invalid, whole is \(whole)") }
            case let prefix:
                guard prefix == whole else { return XCTFail("\(name): cut at \(length) is \(prefix), whole is \(whole)") }
            }
        }
    }
}
