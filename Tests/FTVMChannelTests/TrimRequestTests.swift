import FTVMChannel
import XCTest

final class TrimRequestTests: XCTestCase {
    private func parse(_ bytes: [UInt8]) -> TrimRequest? {
        bytes.withUnsafeBytes { TrimRequest(datagram: $0) }
    }

    private func parse(_ text: String) -> TrimRequest? { parse(Array(text.utf8)) }

    private let golden = TrimRequest(
        clientAddress: 0x0A00_0007, clientPort: 40312, serverPort: 7000, clientOffset: 1234, serverOffset: 56789)
    private let goldenText = "ftvm-trim 1 10.0.0.7 40312 7000 1234 56789\n"

    func testGoldenDatagram() {
        XCTAssertEqual(String(decoding: golden.datagram, as: UTF8.self), goldenText)
        XCTAssertEqual(parse(goldenText), golden)
    }

    func testRoundTripAtTheEdges() {
        let requests = [
            golden,
            TrimRequest(clientAddress: 0, clientPort: 1, serverPort: 1, clientOffset: 0, serverOffset: 0),
            TrimRequest(
                clientAddress: .max, clientPort: .max, serverPort: .max, clientOffset: .max, serverOffset: .max),
            TrimRequest(
                clientAddress: 0xC0A8_0A01, clientPort: 80, serverPort: 65535, clientOffset: 10, serverOffset: 1 << 32),
            TrimRequest(
                clientAddress: 0x7F00_0001, clientPort: 9, serverPort: 8, clientOffset: 100, serverOffset: 1_000_000_007
            ),
        ]
        for request in requests {
            XCTAssertEqual(parse(request.datagram), request, String(decoding: request.datagram, as: UTF8.self))
        }
        let longest = TrimRequest(
            clientAddress: .max, clientPort: .max, serverPort: .max, clientOffset: .max, serverOffset: .max)
        XCTAssertEqual(longest.datagram.count, TrimRequest.maximumDatagramLength)
        XCTAssertEqual(
            String(decoding: longest.datagram, as: UTF8.self),
            "ftvm-trim 1 255.255.255.255 65535 65535 18446744073709551615 18446744073709551615\n")
    }

    func testEveryTruncationIsRefused() {
        for datagram in [
            Array(goldenText.utf8),
            TrimRequest(clientAddress: .max, clientPort: .max, serverPort: .max, clientOffset: .max, serverOffset: .max)
                .datagram,
        ] {
            for length in 0..<datagram.count {
                XCTAssertNil(parse(Array(datagram.prefix(length))), "first \(length) bytes")
                XCTAssertNil(parse(Array(datagram.suffix(length))), "last \(length) bytes")
            }
        }
    }

    func testBadNumbersAreRefused() {
        let malformed = [
            // Address
            "ftvm-trim 1 10.0.0 40312 7000 1234 56789\n",
            "ftvm-trim 1 10.0.0.7.1 40312 7000 1234 56789\n",
            "ftvm-trim 1 10.0.0.256 40312 7000 1234 56789\n",
            "ftvm-trim 1 10.0..7 40312 7000 1234 56789\n",
            "ftvm-trim 1 010.0.0.7 40312 7000 1234 56789\n",
            "ftvm-trim 1 10.0.0.-7 40312 7000 1234 56789\n",
            "ftvm-trim 1 10.0.0.0x7 40312 7000 1234 56789\n",
            "ftvm-trim 1 ::1 40312 7000 1234 56789\n",
            "ftvm-trim 1 localhost 40312 7000 1234 56789\n",
            // Ports
            "ftvm-trim 1 10.0.0.7 0 7000 1234 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 0 1234 56789\n",
            "ftvm-trim 1 10.0.0.7 65536 7000 1234 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 99999 1234 56789\n",
            "ftvm-trim 1 10.0.0.7 040312 7000 1234 56789\n",
            "ftvm-trim 1 10.0.0.7 +40312 7000 1234 56789\n",
            // Offsets
            "ftvm-trim 1 10.0.0.7 40312 7000 -1 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 01234 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 00 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 0x10\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 12a4 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1.5 56789\n",
            // Overflow: UInt64.max + 1, and far beyond
            "ftvm-trim 1 10.0.0.7 40312 7000 18446744073709551616 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 18446744073709551616\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 99999999999999999999\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 " + String(repeating: "9", count: 1000) + "\n",
            "ftvm-trim 1 4294967303 40312 7000 1234 56789\n",
            // Separators, prefix and version
            "ftvm-trim 1 10.0.0.7 40312 7000 1234  56789\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234\t56789\n",
            "ftvm-trim  1 10.0.0.7 40312 7000 1234 56789\n",
            " ftvm-trim 1 10.0.0.7 40312 7000 1234 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 56789 \n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 56789\r\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 56789",
            "ftvm-trim 2 10.0.0.7 40312 7000 1234 56789\n",
            "ftvm-trim 01 10.0.0.7 40312 7000 1234 56789\n",
            "FTVM-TRIM 1 10.0.0.7 40312 7000 1234 56789\n",
            "ftvm-trim 10.0.0.7 40312 7000 1234 56789\n",
            "",
            "\n",
            // Missing and extra fields
            "ftvm-trim 1 10.0.0.7 40312 7000 1234\n",
            "ftvm-trim 1 10.0.0.7 40312 1234 56789\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 56789 1\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 56789 extra\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 56789\n\n",
            "ftvm-trim 1 10.0.0.7 40312 7000 1234 56789\nftvm-trim 1 10.0.0.7 40312 7000 1234 56789\n",
        ]
        for text in malformed {
            XCTAssertNil(parse(text), text.debugDescription)
        }
        XCTAssertNil(parse(Array(goldenText.utf8) + [0]), "trailing NUL")
        XCTAssertNil(parse([0] + Array(goldenText.utf8)), "leading NUL")
    }

    /// Mutations of valid datagrams never trap, and whatever parses is canonical: it serialises
    /// back to exactly the bytes that were parsed.
    func testFuzzedDatagramsParseOnlyToCanonicalForms() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789. \nftvm-ri1x\r\t".utf8) + [0, 0xFF]
        var accepted = 0
        for _ in 0..<50_000 {
            let base = TrimRequest(
                clientAddress: .random(in: 0...UInt32.max, using: &generator),
                clientPort: .random(in: 1...UInt16.max, using: &generator),
                serverPort: .random(in: 1...UInt16.max, using: &generator),
                clientOffset: UInt64.random(in: 0...UInt64.max, using: &generator)
                    >> UInt64.random(in: 0...63, using: &generator),
                serverOffset: UInt64.random(in: 0...UInt64.max, using: &generator)
                    >> UInt64.random(in: 0...63, using: &generator))
            var bytes = base.datagram
            XCTAssertEqual(parse(bytes), base)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
                }
                if bytes.isEmpty { break }
            }
            if let parsed = parse(bytes) {
                accepted += 1
                XCTAssertEqual(parsed.datagram, bytes, String(decoding: bytes, as: UTF8.self).debugDescription)
            }
        }
        XCTAssertGreaterThan(accepted, 0, "some mutations (a digit for a digit) stay valid")
    }
}
