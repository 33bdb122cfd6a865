package io.edgeinfinite.cli;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32;

/**
 * The KL-divergence base file: a base model's log-probabilities over the scored positions
 * of a text, written by {@code ei perplexity --kl-divergence-base} and read back by
 * {@code --kl-divergence}. Little-endian throughout:
 * <pre>
 *   offset  size  field
 *   0       8     magic "EIKLBASE"
 *   8       4     u32 version (1)
 *   12      4     u32 n_vocab
 *   16      4     u32 ctx (chunk size in tokens)
 *   20      4     u32 n_chunks
 *   24      4     u32 first (first scored position of a chunk; ctx/2)
 *   28      4     i32 bos (the token put at each chunk's start; -1: none)
 *   32      8     u64 vocab hash (FNV-1a 64 over each token's text as UTF-8, each followed by a 0 byte)
 *   40      8     u64 reserved, 0
 *   48      4*n_chunks*ctx      i32 tokens the chunks were cut from (BOS in front when the model adds one)
 *   then    n_chunks*(ctx-1-first) rows, chunk by chunk, position by position:
 *             f32 target  ln p of the token that follows (exact, for the base's perplexity)
 *             f32 floor   ln p of code 0 (at least the row's ln p max - 16)
 *             f32 step    ln p per code (0 only when every token has the same ln p)
 *             u16 code[n_vocab]   ln p_i = floor + step * code_i; when step > 0, code 0 means
 *                                 "at or below the floor" and counts as p = 0 in the KL sum
 *   end-4   4     u32 CRC-32 of every byte before it
 * </pre>
 * The codes cover the 16 nats below the most likely token linearly (steps of at most
 * 16/65535 = 2.4e-4 nats), which keeps a row at 2 bytes per token; tokens less likely than
 * e^-16 times the top one carry too little probability to move a KL divergence.
 *
 * <p>The reader treats the file as untrusted: the size must be exactly what the header
 * implies, every header field is range-checked, every row's floor and step are checked
 * (finite, step in [0, 16/65535], top ln p at most 0 give or take rounding), and the CRC is
 * verified once the last row is read, before any figure is reported.
 */
final class KlBaseFile {
    static final byte[] MAGIC = "EIKLBASE".getBytes(StandardCharsets.US_ASCII);
    static final int VERSION = 1;
    static final int HEADER = 48;
    static final float RANGE = 16f;  // nats below the top token that the codes cover
    static final int MAX_VOCAB = 1 << 24, MAX_CTX = 1 << 24;

    private KlBaseFile() {}

    /** What identifies the text, tokenization and model family a base file was made for. */
    record Header(int nVocab, int ctx, int chunks, int first, int bos, long vocabHash) {
        int scoredPerChunk() {
            return ctx - 1 - first;
        }

        long rows() {
            return (long) chunks * scoredPerChunk();
        }

        long rowBytes() {
            return 12L + 2L * nVocab;
        }

        /** The file size this header implies (overflow-checked). */
        long fileSize() {
            return Math.addExact(Math.addExact(HEADER + 4L, Math.multiplyExact(4L, Math.multiplyExact((long) chunks, ctx))),
                    Math.multiplyExact(rows(), rowBytes()));
        }
    }

    /** FNV-1a 64 over each token's text (UTF-8) followed by a 0 byte. */
    static long vocabHash(List<String> pieces) {
        long h = 0xcbf29ce484222325L;
        for (String p : pieces) {
            for (byte b : p.getBytes(StandardCharsets.UTF_8)) {
                h ^= b & 0xff;
                h *= 0x100000001b3L;
            }
            h *= 0x100000001b3L;  // the 0 separator
        }
        return h;
    }

    /** Writes a base file row by row; {@link #close()} appends the checksum. */
    static final class Writer implements AutoCloseable {
        private final OutputStream out;
        private final CRC32 crc = new CRC32();
        private final Header h;
        private final ByteBuffer row;
        private long rowsWritten;
        private boolean closed;

        Writer(Path path, Header h, int[] tokens) throws IOException {
            if (tokens.length != (long) h.chunks() * h.ctx()) {
                throw new IllegalArgumentException("tokens: " + tokens.length + ", expected " + (long) h.chunks() * h.ctx());
            }
            this.h = h;
            this.out = new BufferedOutputStream(Files.newOutputStream(path), 1 << 16);
            ByteBuffer hb = ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN);
            hb.put(MAGIC).putInt(VERSION).putInt(h.nVocab()).putInt(h.ctx()).putInt(h.chunks()).putInt(h.first())
                    .putInt(h.bos()).putLong(h.vocabHash()).putLong(0);
            write(hb.array(), HEADER);
            ByteBuffer tb = ByteBuffer.allocate(4 * tokens.length).order(ByteOrder.LITTLE_ENDIAN);
            tb.asIntBuffer().put(tokens);
            write(tb.array(), tb.capacity());
            this.row = ByteBuffer.allocate((int) h.rowBytes()).order(ByteOrder.LITTLE_ENDIAN);
        }

        private void write(byte[] b, int n) throws IOException {
            crc.update(b, 0, n);
            out.write(b, 0, n);
        }

        /** Appends the log-probabilities of logits row {@code r} (n_vocab wide), whose next token is target. */
        void writeRow(float[] logits, int r, int target) throws IOException {
            int n = h.nVocab(), off = r * n;
            float max = TokenScores.maxOf(logits, off, n), min = Float.POSITIVE_INFINITY;
            for (int i = 0; i < n; i++) min = Math.min(min, logits[off + i]);
            float lo = Math.max(min, max - RANGE);
            double lse = TokenScores.logSumExp(logits, off, n, max);
            float step = (max - lo) / 65535f;
            row.clear();
            row.putFloat((float) (logits[off + target] - max - lse)).putFloat((float) (lo - max - lse)).putFloat(step);
            for (int i = 0; i < n; i++) {
                float l = logits[off + i];
                int code = step > 0 && l > lo ? (int) Math.min(65535, Math.round((l - lo) / step)) : 0;
                row.putShort((short) code);
            }
            write(row.array(), row.capacity());
            rowsWritten++;
        }

        @Override
        public void close() throws IOException {
            if (closed) return;
            closed = true;
            try (out) {
                if (rowsWritten != h.rows()) {
                    throw new IllegalStateException("wrote " + rowsWritten + " rows of " + h.rows());
                }
                int c = (int) crc.getValue();
                out.write(new byte[] {(byte) c, (byte) (c >>> 8), (byte) (c >>> 16), (byte) (c >>> 24)});
            }
        }
    }

    /** One dequantized row: ln p of every token, or NEGATIVE_INFINITY below the floor. */
    static final class Row {
        final double[] logProb;
        int top;  // the most likely token (the first one on ties)
        double target;  // ln p of the token that follows, exact

        Row(int n) {
            logProb = new double[n];
        }
    }

    /** Reads a base file: header and tokens on open, then the rows in order, then the checksum. */
    static final class Reader implements AutoCloseable {
        private final Path path;
        private final DataInputStream in;
        private final CRC32 crc = new CRC32();
        final Header header;
        final int[] tokens;
        private final byte[] rowBytes;
        private long rowsRead;

        Reader(Path path) throws IOException {
            this.path = path;
            long size = Files.size(path);
            InputStream raw = new BufferedInputStream(Files.newInputStream(path), 1 << 16);
            this.in = new DataInputStream(raw);
            try {
                byte[] hb = readFully(HEADER, "the header");
                ByteBuffer b = ByteBuffer.wrap(hb).order(ByteOrder.LITTLE_ENDIAN);
                byte[] magic = new byte[8];
                b.get(magic);
                if (!Arrays.equals(magic, MAGIC)) throw bad("is not a KL-divergence base file (no EIKLBASE magic)");
                int version = b.getInt();
                if (version != VERSION) throw bad("has version " + Integer.toUnsignedString(version) + "; this build reads version " + VERSION);
                int nVocab = b.getInt(), ctx = b.getInt(), chunks = b.getInt(), first = b.getInt(), bos = b.getInt();
                long vocabHash = b.getLong(), reserved = b.getLong();
                check(nVocab >= 2 && nVocab <= MAX_VOCAB, "n_vocab", nVocab, "2.." + MAX_VOCAB);
                check(ctx >= 2 && ctx <= MAX_CTX, "ctx", ctx, "2.." + MAX_CTX);
                check(chunks >= 1, "n_chunks", chunks, ">= 1");
                check(first == ctx / 2, "first", first, "ctx/2 = " + ctx / 2);
                check(bos >= -1 && bos < nVocab, "bos", bos, "-1.." + (nVocab - 1));
                check(reserved == 0, "reserved", reserved, "0");
                Header h = new Header(nVocab, ctx, chunks, first, bos, vocabHash);
                long expect;
                try {
                    expect = h.fileSize();
                } catch (ArithmeticException e) {
                    throw bad("has a header whose sizes overflow (n_vocab " + nVocab + ", ctx " + ctx + ", n_chunks " + chunks + ")");
                }
                if (size != expect) {
                    throw bad("is " + size + " bytes; its header (n_vocab " + nVocab + ", ctx " + ctx + ", n_chunks " + chunks
                            + ") implies " + expect + (size < expect ? " (truncated?)" : ""));
                }
                if ((long) chunks * ctx > Integer.MAX_VALUE / 4) throw bad("holds too many tokens (" + (long) chunks * ctx + ")");
                this.header = h;
                byte[] tb = readFully(4 * chunks * ctx, "the tokens");
                this.tokens = new int[chunks * ctx];
                ByteBuffer.wrap(tb).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(tokens);
                for (int i = 0; i < tokens.length; i++) {
                    if (tokens[i] < 0 || tokens[i] >= nVocab) throw bad("has token " + tokens[i] + " at " + i + ", outside the vocabulary of " + nVocab);
                }
                this.rowBytes = new byte[(int) h.rowBytes()];
            } catch (IOException | RuntimeException e) {
                in.close();
                throw e;
            }
        }

        private static void check(boolean ok, String field, long value, String bound) {
            if (!ok) throw new IllegalArgumentException("KL-divergence base file: " + field + " is " + value + ", must be " + bound);
        }

        private IllegalArgumentException bad(String what) {
            return new IllegalArgumentException("KL-divergence base file " + path + " " + what);
        }

        private byte[] readFully(int n, String what) throws IOException {
            byte[] b = new byte[n];
            try {
                in.readFully(b);
            } catch (EOFException e) {
                throw bad("ends inside " + what);
            }
            crc.update(b, 0, n);
            return b;
        }

        /** Reads the next row into {@code row}; after the last one, verifies the checksum. */
        void next(Row row) throws IOException {
            if (rowsRead >= header.rows()) throw new IllegalStateException("all " + header.rows() + " rows were read");
            in.readFully(rowBytes);
            crc.update(rowBytes, 0, rowBytes.length);
            ByteBuffer b = ByteBuffer.wrap(rowBytes).order(ByteOrder.LITTLE_ENDIAN);
            float target = b.getFloat(), floor = b.getFloat(), step = b.getFloat();
            if (!Float.isFinite(target) || target > 1e-3f) throw bad("row " + rowsRead + ": the next token's ln p is " + target);
            if (!Float.isFinite(floor) || !Float.isFinite(step) || step < 0 || step > RANGE / 65535f * 1.0001f || floor > 0) {
                throw bad("row " + rowsRead + ": floor " + floor + " / step " + step + " out of range");
            }
            int n = header.nVocab(), top = 0, topCode = -1;
            for (int i = 0; i < n; i++) {
                int code = b.getShort() & 0xffff;
                row.logProb[i] = step > 0 && code == 0 ? Double.NEGATIVE_INFINITY : floor + (double) step * code;
                if (code > topCode) {
                    topCode = code;
                    top = i;
                }
            }
            double topLp = floor + (double) step * topCode;
            // The top token's ln p is -ln(sum of e^(l_i - max)) <= 0; allow float rounding.
            if (topLp > 1e-3) throw bad("row " + rowsRead + ": the top token's ln p is " + topLp + " > 0");
            row.top = top;
            row.target = target;
            rowsRead++;
            if (rowsRead == header.rows()) verifyChecksum();
        }

        private void verifyChecksum() throws IOException {
            byte[] t = new byte[4];
            try {
                in.readFully(t);
            } catch (EOFException e) {
                throw bad("ends before its checksum");
            }
            int stored = (t[0] & 0xff) | (t[1] & 0xff) << 8 | (t[2] & 0xff) << 16 | (t[3] & 0xff) << 24;
            if (stored != (int) crc.getValue()) {
                throw bad("fails its checksum (stored " + Integer.toHexString(stored) + ", computed "
                        + Long.toHexString(crc.getValue()) + "): the file is corrupt");
            }
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }
}
