// core/destination/subscription_index.hpp — topic filters in a trie over name levels: finds the
// filters that match a topic name at a cost that depends on the name and on the filters that
// match it, not on how many other filters there are.
//
// Semantics are exactly matches() of destination.hpp: '.' separates levels (empty levels are
// levels), '*' matches one level, '>' matches the rest (zero or more levels, so "a.>" matches
// "a"), and a name starting with '$' is not matched by a wildcard in the first level.
// Insert and erase are rare (a subscription change), match is the publish hot path: it walks
// only the branches the name can take (its own level, '*', '>') and allocates nothing once its
// scratch space has grown to the largest match so far. Not thread-safe: one shard owns one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sb::core {

template <typename V>
class subscription_index {
public:
    // Adds `value` under `filter` (a valid_name(); a '>' level ends it, as in matches()). The
    // same (filter, value) may be added more than once: each add matches on its own and is
    // removed by its own erase.
    void insert(std::string_view filter, V value) {
        node_id n = root;
        bool rest = false;
        for (cursor c{filter}; !c.done;) {
            const auto level = c.next();
            if (level == ">") {
                rest = true;
                break;
            }
            n = level == "*" ? star_of(n) : child_of(n, level);
        }
        auto& list = rest ? nodes_[n].rest : nodes_[n].here;
        list.push_back(entry{next_seq_++, std::move(value)});
        ++size_;
    }

    // Removes one earlier add of (filter, value), the oldest; false when there is none.
    bool erase(std::string_view filter, const V& value) {
        path_.clear();
        node_id n = root;
        bool rest = false;
        for (cursor c{filter}; !c.done;) {
            const auto level = c.next();
            if (level == ">") {
                rest = true;
                break;
            }
            const node_id next = level == "*" ? nodes_[n].star : find_child(n, level);
            if (next == none) return false;
            path_.push_back(step{n, level});
            n = next;
        }
        auto& list = rest ? nodes_[n].rest : nodes_[n].here;
        const auto it = std::find_if(list.begin(), list.end(), [&](const entry& e) { return e.value == value; });
        if (it == list.end()) return false;
        list.erase(it);   // keeps the others in insertion order
        --size_;
        // Nodes left with nothing under them go, deepest first.
        while (n != root && nodes_[n].unused()) {
            const step s = path_.back();
            path_.pop_back();
            auto& parent = nodes_[s.parent];
            if (parent.star == n) {
                parent.star = none;
            } else {
                edges_.erase(edges_.find(edge_view{s.parent, s.level}));
                --parent.children;
            }
            nodes_[n] = node{};   // releases its lists
            free_.push_back(n);
            n = s.parent;
        }
        return true;
    }

    // Appends to `out` the value of every add whose filter matches `name`, each once, in the
    // order they were added.
    void match(std::string_view name, std::vector<V>& out) {
        if (size_ == 0) return;
        hits_.clear();
        stack_.clear();
        // A name starting with '$' is not matched by a wildcard in the first level (MQTT 5
        // §4.7.2). The pending branches: a node and the rest of the name below it; each node is
        // reached by one path only, so each filter is found at most once.
        const bool dollar = !name.empty() && name.front() == '$';
        stack_.push_back(branch{root, cursor{name}});
        while (!stack_.empty()) {
            const branch b = stack_.back();
            stack_.pop_back();
            const node& nd = nodes_[b.n];
            if (b.levels.done) {   // the whole name is consumed: filters ending here, and "<here>.>"
                append(nd.here);
                append(nd.rest);
                continue;
            }
            const bool wild = !(dollar && b.n == root);
            if (wild) append(nd.rest);   // '>' takes one or more remaining levels
            if (nd.children == 0 && nd.star == none) continue;
            cursor below = b.levels;
            const auto level = below.next();
            if (nd.children != 0)
                if (const node_id c = find_child(b.n, level); c != none) stack_.push_back(branch{c, below});
            if (wild && nd.star != none) stack_.push_back(branch{nd.star, below});
        }
        // Branches are walked in trie order; subscribers expect the order of subscription.
        if (!std::is_sorted(hits_.begin(), hits_.end(), by_seq))
            std::sort(hits_.begin(), hits_.end(), by_seq);
        for (const auto* e : hits_) out.push_back(e->value);
    }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

private:
    using node_id = std::uint32_t;
    static constexpr node_id root = 0;
    static constexpr node_id none = ~node_id{0};

    struct entry {
        std::uint64_t seq;   // order of insertion
        V value;
    };

    struct node {
        std::vector<entry> here;   // filters ending at this node
        std::vector<entry> rest;   // filters that are this node's path followed by '>'
        node_id star = none;       // the '*' child
        std::uint32_t children = 0;   // literal children, in edges_

        bool unused() const noexcept { return here.empty() && rest.empty() && star == none && children == 0; }
    };

    // Literal children of every node in one hash table keyed by (parent, level): a node costs
    // no table of its own, and a lookup is one probe however many siblings there are.
    struct edge_key {
        node_id parent;
        std::string level;
    };
    struct edge_view {
        node_id parent;
        std::string_view level;
    };
    struct edge_hash {
        using is_transparent = void;
        std::size_t operator()(const edge_view& k) const noexcept {
            return std::hash<std::string_view>{}(k.level) ^ (std::size_t(k.parent) * 0x9e3779b97f4a7c15ull);
        }
        std::size_t operator()(const edge_key& k) const noexcept { return (*this)(edge_view{k.parent, k.level}); }
    };
    struct edge_eq {
        using is_transparent = void;
        template <typename A, typename B>
        bool operator()(const A& a, const B& b) const noexcept {
            return a.parent == b.parent && std::string_view(a.level) == std::string_view(b.level);
        }
    };

    // Walks the levels of a name or filter, as destination.cpp does: "a." has two levels, the
    // second empty; "" has one.
    struct cursor {
        std::string_view rest;
        bool done = false;   // every level taken

        std::string_view next() noexcept {
            const auto dot = rest.find('.');
            if (dot == std::string_view::npos) {
                done = true;
                return rest;
            }
            const auto level = rest.substr(0, dot);
            rest.remove_prefix(dot + 1);
            return level;
        }
    };

    struct branch {
        node_id n;
        cursor levels;   // the levels of the name below n; done: the name ends at n
    };
    struct step {
        node_id parent;
        std::string_view level;
    };

    static bool by_seq(const entry* a, const entry* b) noexcept { return a->seq < b->seq; }

    void append(const std::vector<entry>& list) {
        for (const auto& e : list) hits_.push_back(&e);
    }

    node_id find_child(node_id parent, std::string_view level) const {
        const auto it = edges_.find(edge_view{parent, level});
        return it == edges_.end() ? none : it->second;
    }

    node_id new_node() {
        if (!free_.empty()) {
            const node_id n = free_.back();
            free_.pop_back();
            return n;
        }
        nodes_.emplace_back();
        return node_id(nodes_.size() - 1);
    }

    node_id star_of(node_id parent) {
        if (nodes_[parent].star != none) return nodes_[parent].star;
        const node_id n = new_node();   // may move nodes_: index again below
        nodes_[parent].star = n;
        return n;
    }

    node_id child_of(node_id parent, std::string_view level) {
        if (const node_id c = find_child(parent, level); c != none) return c;
        const node_id n = new_node();
        edges_.emplace(edge_key{parent, std::string(level)}, n);
        ++nodes_[parent].children;
        return n;
    }

    std::vector<node> nodes_ = std::vector<node>(1);   // [root] is the root
    std::vector<node_id> free_;
    std::unordered_map<edge_key, node_id, edge_hash, edge_eq> edges_;
    std::uint64_t next_seq_ = 0;
    std::size_t size_ = 0;
    // Scratch, reused by every call.
    std::vector<branch> stack_;
    std::vector<const entry*> hits_;
    std::vector<step> path_;
};

}  // namespace sb::core
