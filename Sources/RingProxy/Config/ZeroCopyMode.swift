/// Whether sends use `IORING_OP_SEND_ZC`, which lends the buffer to the NIC instead of copying it into the
/// socket. It posts a second completion when the kernel is done with the buffer, so it pays only for large
/// writes on real NICs; loopback copies anyway.
public enum ZeroCopyMode: String, CaseIterable, Sendable {
    case off, on
    /// Zero-copy for sends of at least `ZeroCopyMode.autoThreshold` bytes.
    case auto

    public static let autoThreshold: UInt32 = 8192
}
