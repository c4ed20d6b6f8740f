/// The DNS wire format, as far as c-ares leaves it to us: `ares_parse_srv_reply` drops the records' TTLs.
public enum DNSMessage {
    /// The smallest TTL of the answer section's records of `type` (33: SRV), or nil when the message is
    /// malformed or has none.
    public static func minimumAnswerTTL(_ message: [UInt8], type: UInt16) -> Int? {
        guard message.count >= 12 else { return nil }
        func word(_ at: Int) -> Int? { at + 1 < message.count ? Int(message[at]) << 8 | Int(message[at + 1]) : nil }
        /// The offset after the (possibly compressed) name at `start`.
        func skipName(_ start: Int) -> Int? {
            var at = start
            while at < message.count {
                let length = Int(message[at])
                if length == 0 { return at + 1 }
                if length & 0xC0 == 0xC0 { return at + 2 <= message.count ? at + 2 : nil }
                guard length & 0xC0 == 0 else { return nil }
                at += 1 + length
            }
            return nil
        }
        guard let questions = word(4), let answers = word(6) else { return nil }
        var at = 12
        for _ in 0..<questions {
            guard let end = skipName(at) else { return nil }
            at = end + 4
        }
        var smallest: Int?
        for _ in 0..<answers {
            guard let end = skipName(at), let recordType = word(end), let high = word(end + 4), let low = word(end + 6),
                  let length = word(end + 8) else { return nil }
            if recordType == Int(type) { smallest = min(smallest ?? Int.max, high << 16 | low) }
            at = end + 10 + length
            guard at <= message.count else { return nil }
        }
        return smallest
    }
}
