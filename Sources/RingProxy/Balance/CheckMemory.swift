import RingIO
import RingSystem

/// The memory the kernel reads and writes for one list of health targets: each target's connect address,
/// request bytes and receive area, in fixed arrays that live as long as a check of the list is in flight
/// (every running check holds a reference), so a new target list never frees what the kernel still uses.
final class CheckMemory {
    /// Each target's connect address, where its connect points until submitted.
    let addresses: FixedArray<SocketAddress>
    /// Every target's request, then its receive area, one after the other.
    let bytes: FixedArray<UInt8>
    private let layout: [(request: Int, requestLength: Int, receive: Int, within: Int)]

    init(_ targets: [HealthTarget]) {
        var bytes: [UInt8] = []
        var layout: [(Int, Int, Int, Int)] = []
        for target in targets {
            let request = target.checks.probe.request(host: "\(target.address)")
            let requestOffset = bytes.count
            bytes += request
            let receive = bytes.count
            bytes += repeatElement(0, count: target.checks.probe.within)
            layout.append((requestOffset, request.count, receive, target.checks.probe.within))
        }
        addresses = FixedArray(targets.map(\.address))
        self.bytes = FixedArray(bytes)
        self.layout = layout
    }

    /// Where target `index`'s request starts in `bytes`, and its length.
    func request(_ index: Int) -> (offset: Int, count: Int) { (layout[index].request, layout[index].requestLength) }

    /// Where target `index`'s receive area starts in `bytes`, and its size (the probe's `within`).
    func receiveArea(_ index: Int) -> (offset: Int, capacity: Int) { (layout[index].receive, layout[index].within) }

    /// The first `count` bytes received for target `index`.
    func received(_ index: Int, count: Int) -> [UInt8] {
        let start = layout[index].receive
        return (0..<count).map { bytes[start + $0] }
    }
}
