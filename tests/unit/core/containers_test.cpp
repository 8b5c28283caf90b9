// SPDX-License-Identifier: BSL-1.0
// The core's two containers: intrusive_list (an object in several lists at
// once, removal from anywhere) and indexed_heap (the least key first, keys
// changed or objects taken out from anywhere), each against a plain model.
#include <gtest/gtest.h>

#include "core/indexed_heap.hpp"
#include "core/intrusive_list.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <list>
#include <map>
#include <random>
#include <vector>

namespace qorb::core {
namespace {

struct item {
  int value = 0;
  list_hook<item> in_a;
  list_hook<item> in_b;
  std::size_t pos = std::numeric_limits<std::size_t>::max();  // indexed_heap's absent
};
struct item_position {
  static std::size_t& of(item& x) noexcept { return x.pos; }
};
using list_a = intrusive_list<item, &item::in_a>;
using list_b = intrusive_list<item, &item::in_b>;
using heap = indexed_heap<item, int, item_position>;
static_assert(heap::absent == std::numeric_limits<std::size_t>::max());

template <class L>
std::vector<int> values(const L& l) {
  std::vector<int> out;
  l.for_each([&](const item& x) { out.push_back(x.value); });
  return out;
}

template <class L, list_hook<item> item::*Hook>
void expect_linked_both_ways(const L& l) {
  const item* prev = nullptr;
  std::size_t n = 0;
  for (const item* x = l.front(); x && n <= l.size(); x = (x->*Hook).next, ++n) {
    EXPECT_EQ((x->*Hook).prev, prev);
    prev = x;
  }
  EXPECT_EQ(n, l.size());
  EXPECT_EQ(l.back(), prev);
}

TEST(intrusive_list, one_object_sits_in_two_lists_and_leaves_either_alone) {
  std::array<item, 3> x{};
  for (int i = 0; i < 3; ++i) x[std::size_t(i)].value = i;
  list_a a;
  list_b b;
  for (auto& e : x) a.push_back(e);
  for (auto& e : x) b.push_front(e);
  EXPECT_EQ(values(a), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(values(b), (std::vector<int>{2, 1, 0}));
  a.remove(x[1]);
  EXPECT_FALSE(a.contains(x[1]));
  EXPECT_TRUE(b.contains(x[1]));
  EXPECT_EQ(values(a), (std::vector<int>{0, 2}));
  EXPECT_EQ(values(b), (std::vector<int>{2, 1, 0})) << "the other list is untouched";
  EXPECT_EQ(a.pop_front(), &x[0]);
  EXPECT_EQ(a.pop_front(), &x[2]);
  EXPECT_EQ(a.pop_front(), nullptr);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.back(), nullptr) << "the tail is cleared with the head";
}

TEST(intrusive_list, for_each_lets_the_visited_object_leave) {
  std::array<item, 4> x{};
  list_a a;
  for (int i = 0; i < 4; ++i) {
    x[std::size_t(i)].value = i;
    a.push_back(x[std::size_t(i)]);
  }
  a.for_each([&](item& e) {
    if (e.value % 2 == 0) a.remove(e);
  });
  EXPECT_EQ(values(a), (std::vector<int>{1, 3}));
  expect_linked_both_ways<list_a, &item::in_a>(a);
}

TEST(intrusive_list, agrees_with_std_list_under_random_operations) {
  std::mt19937 rng(7);
  std::vector<item> pool(32);
  for (std::size_t i = 0; i < pool.size(); ++i) pool[i].value = int(i);
  list_a a;
  std::list<int> model;
  for (int step = 0; step < 20000; ++step) {
    item& x = pool[rng() % pool.size()];
    const bool in = a.contains(x);
    ASSERT_EQ(in, std::find(model.begin(), model.end(), x.value) != model.end());
    if (in) {
      a.remove(x);
      model.remove(x.value);
    } else if (rng() % 2) {
      a.push_back(x);
      model.push_back(x.value);
    } else {
      a.push_front(x);
      model.push_front(x.value);
    }
    ASSERT_EQ(a.size(), model.size());
    if (step % 97 == 0) {
      ASSERT_EQ(values(a), std::vector<int>(model.begin(), model.end()));
      expect_linked_both_ways<list_a, &item::in_a>(a);
    }
  }
}

TEST(indexed_heap, an_empty_heap) {
  heap h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.top(), nullptr);
}

TEST(indexed_heap, agrees_with_a_multimap_under_random_operations) {
  std::mt19937 rng(11);
  std::vector<item> pool(64);
  for (std::size_t i = 0; i < pool.size(); ++i) pool[i].value = int(i);
  heap h;
  std::map<int, int> key_of;  // value -> key, for objects in the heap
  auto least = [&] {
    int best = 0, key = 0;
    bool any = false;
    for (auto [v, k] : key_of) {
      if (!any || k < key) best = v, key = k, any = true;
    }
    return std::pair{best, key};
  };
  for (int step = 0; step < 20000; ++step) {
    item& x = pool[rng() % pool.size()];
    const int key = int(rng() % 1000);
    ASSERT_EQ(heap::contains(x), key_of.contains(x.value));
    switch (rng() % 4) {
      case 0:
        if (heap::contains(x)) {
          EXPECT_EQ(h.erase(x), key_of[x.value]);
          key_of.erase(x.value);
          EXPECT_FALSE(heap::contains(x));
        } else {
          h.push(x, key);
          key_of[x.value] = key;
        }
        break;
      case 1:
        if (heap::contains(x)) {
          h.update(x, key);
          key_of[x.value] = key;
        }
        break;
      case 2:
        if (heap::contains(x) && key >= key_of[x.value]) {
          h.raise(x, key);
          key_of[x.value] = key;
        }
        break;
      case 3:
        if (!h.empty()) {
          item* t = h.top();
          EXPECT_EQ(h.top_key(), least().second);
          EXPECT_EQ(h.key_of(*t), key_of[t->value]) << "ties may pick either";
          h.erase(*t);
          key_of.erase(t->value);
        }
        break;
    }
    ASSERT_EQ(h.size(), key_of.size());
  }
}

TEST(indexed_heap, rekey_all_rebuilds_the_order) {
  std::array<item, 8> x{};
  heap h;
  for (int i = 0; i < 8; ++i) {
    x[std::size_t(i)].value = i;
    h.push(x[std::size_t(i)], i);
  }
  EXPECT_EQ(h.top(), &x[0]);
  h.rekey_all([](const item& e) { return 100 - e.value; });
  for (int i = 7; i >= 0; --i) {
    ASSERT_EQ(h.top(), &x[std::size_t(i)]);
    EXPECT_EQ(h.top_key(), 100 - i);
    h.erase(*h.top());
  }
  EXPECT_TRUE(h.empty());
}

}  // namespace
}  // namespace qorb::core
