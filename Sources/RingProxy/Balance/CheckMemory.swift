import Glibc

/// The memory the kernel reads and writes for one list of health targets: each target's connect address,
/// request bytes and receive area, in one allocation that lives as long as a check of the list is in flight
/// (every running check holds a reference), so a new target list never frees what the kernel still uses.
final class CheckMemory {
    private let base: UnsafeMutableRawPointer
    private let offsets: [(address: Int, request: Int, requestLength: Int, receive: Int, within: Int)]

    init(_ targets: [HealthTarget]) {
        var layout: [(Int, Int, Int, Int, Int)] = []
        var size = 0
        for target in targets {
            let request = target.checks.probe.request(host: "\(target.address)")
            let address = size
            size += MemoryLayout<sockaddr_storage>.stride
            let requestOffset = size
            size += (request.count + 7) & ~7
            let receive = size
            size += (target.checks.probe.within + 7) & ~7
            layout.append((address, requestOffset, request.count, receive, target.checks.probe.within))
        }
        base = .allocate(byteCount: max(8, size), alignment: 16)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(8, size))
        offsets = layout
        for (index, target) in targets.enumerated() {
            target.address.withSockaddr { address, length in
                (base + layout[index].0).copyMemory(from: address, byteCount: Int(length))
            }
            let request = target.checks.probe.request(host: "\(target.address)")
            request.withUnsafeBytes { bytes in
                if let start = bytes.baseAddress { (base + layout[index].1).copyMemory(from: start, byteCount: bytes.count) }
            }
        }
    }

    deinit { base.deallocate() }

    func address(_ index: Int) -> UnsafePointer<sockaddr> {
        UnsafePointer((base + offsets[index].address).assumingMemoryBound(to: sockaddr.self))
    }

    func request(_ index: Int) -> (bytes: UnsafeRawPointer, count: Int) {
        (UnsafeRawPointer(base + offsets[index].request), offsets[index].requestLength)
    }

    func receiveArea(_ index: Int) -> (bytes: UnsafeMutableRawPointer, capacity: Int) {
        (base + offsets[index].receive, offsets[index].within)
    }

    /// The first `count` bytes received for target `index`.
    func received(_ index: Int, count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: base + offsets[index].receive, count: count))
    }
}
