package io.edgeinfinite.cli;

import io.edgeinfinite.ChatMessage;
import java.util.ArrayList;
import java.util.List;

/**
 * Chat calibration data: one conversation per line, {@code {"messages": [{"role": "user",
 * "content": "..."}, {"role": "assistant", "content": "..."}, ...]}} (other keys ignored,
 * blank lines skipped). A small strict JSON reader: a malformed line is an error naming its
 * line and column, never a guess.
 */
final class ChatJsonl {
    private ChatJsonl() {}

    static List<List<ChatMessage>> parse(String text, String source) {
        List<List<ChatMessage>> out = new ArrayList<>();
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty()) continue;
            String where = source + " line " + (i + 1);
            Object v;
            try {
                Reader r = new Reader(line);
                v = r.value();
                r.ws();
                if (r.at < line.length()) throw r.error("text after the JSON value");
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
            }
            if (!(v instanceof java.util.Map<?, ?> obj) || !(obj.get("messages") instanceof List<?> msgs)) {
                throw new IllegalArgumentException(where + ": expected an object with a \"messages\" array");
            }
            List<ChatMessage> conv = new ArrayList<>();
            for (int k = 0; k < msgs.size(); k++) {
                if (!(msgs.get(k) instanceof java.util.Map<?, ?> m) || !(m.get("role") instanceof String role)
                        || !(m.get("content") instanceof String content)) {
                    throw new IllegalArgumentException(where + ": message " + k
                            + " needs string \"role\" and \"content\"");
                }
                conv.add(new ChatMessage(role, content));
            }
            if (conv.stream().noneMatch(m -> m.role().equals("assistant"))) {
                throw new IllegalArgumentException(where + ": the conversation has no assistant message to weight");
            }
            out.add(conv);
        }
        if (out.isEmpty()) throw new IllegalArgumentException(source + ": no conversations");
        return out;
    }

    /** Recursive descent over one line: objects, arrays, strings, numbers, true/false/null. */
    private static final class Reader {
        final String s;
        int at;

        Reader(String s) {
            this.s = s;
        }

        IllegalArgumentException error(String what) {
            return new IllegalArgumentException("bad JSON at column " + (at + 1) + ": " + what);
        }

        void ws() {
            while (at < s.length() && " \t\r\n".indexOf(s.charAt(at)) >= 0) at++;
        }

        char peek() {
            ws();
            if (at >= s.length()) throw error("unexpected end of line");
            return s.charAt(at);
        }

        void expect(char c) {
            if (peek() != c) throw error("expected '" + c + "'");
            at++;
        }

        Object value() {
            char c = peek();
            if (c == '{') {
                at++;
                java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
                if (peek() == '}') {
                    at++;
                    return m;
                }
                while (true) {
                    if (peek() != '"') throw error("expected a string key");
                    String k = string();
                    expect(':');
                    m.put(k, value());
                    char d = peek();
                    at++;
                    if (d == '}') return m;
                    if (d != ',') throw error("expected ',' or '}'");
                }
            }
            if (c == '[') {
                at++;
                List<Object> a = new ArrayList<>();
                if (peek() == ']') {
                    at++;
                    return a;
                }
                while (true) {
                    a.add(value());
                    char d = peek();
                    at++;
                    if (d == ']') return a;
                    if (d != ',') throw error("expected ',' or ']'");
                }
            }
            if (c == '"') return string();
            for (String w : new String[] {"true", "false", "null"}) {
                if (s.startsWith(w, at)) {
                    at += w.length();
                    return w.equals("null") ? null : Boolean.valueOf(w);
                }
            }
            int start = at;
            while (at < s.length() && "+-0123456789.eE".indexOf(s.charAt(at)) >= 0) at++;
            try {
                if (start == at) throw new NumberFormatException();
                return Double.parseDouble(s.substring(start, at));
            } catch (NumberFormatException e) {
                at = start;
                throw error("expected a value");
            }
        }

        String string() {
            at++;  // the opening quote
            StringBuilder b = new StringBuilder();
            while (true) {
                if (at >= s.length()) throw error("unterminated string");
                char c = s.charAt(at++);
                if (c == '"') return b.toString();
                if (c < 0x20) throw error("control character in a string");
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (at >= s.length()) throw error("unterminated escape");
                char e = s.charAt(at++);
                switch (e) {
                    case '"', '\\', '/' -> b.append(e);
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'n' -> b.append('\n');
                    case 'r' -> b.append('\r');
                    case 't' -> b.append('\t');
                    case 'u' -> {
                        if (at + 4 > s.length()) throw error("short \\u escape");
                        try {
                            b.append((char) Integer.parseInt(s.substring(at, at + 4), 16));
                        } catch (NumberFormatException x) {
                            throw error("bad \\u escape");
                        }
                        at += 4;
                    }
                    default -> throw error("bad escape \\" + e);
                }
            }
        }
    }
}
