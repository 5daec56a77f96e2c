// Group ops (PROTOCOL.md section 4): create, info, add, remove, promote,
// demote, update, leave. Every change goes through Store::ChangeGroup, which
// checks its preconditions and appends the `group` event in the same write.
#include <algorithm>
#include <optional>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "core/messaging/groups.hpp"
#include "core/session/render.hpp"
#include "core/session/session.hpp"
#include "proto/errors.hpp"
#include "proto/json.hpp"

namespace parley::core {

namespace code = proto::code;
using Kind = store::GroupChange::Kind;

namespace {

constexpr std::size_t kMaxGroupNameLength = 100;

// Whether `change` would leave `g` as it is, going by what this node knows
// of the group now (the store decides; this only says what to charge up
// front). Conservative: true only when every part of it is a no-op.
bool LooksLikeNoOp(const store::GroupChange& change, const store::Group& g) {
  auto role_of = [&g](store::UserId u) -> std::optional<store::GroupRole> {
    for (const auto& m : g.members) {
      if (m.user == u) return m.role;
    }
    return std::nullopt;
  };
  switch (change.kind) {
    case Kind::kAdd:
      return std::all_of(change.users.begin(), change.users.end(),
                         [&](store::UserId u) { return role_of(u).has_value(); });
    case Kind::kRemove:
      return std::none_of(change.users.begin(), change.users.end(),
                          [&](store::UserId u) { return role_of(u).has_value(); });
    case Kind::kPromote:
      return std::all_of(change.users.begin(), change.users.end(),
                         [&](store::UserId u) { return role_of(u) == store::GroupRole::kAdmin; });
    case Kind::kDemote:
      return std::all_of(change.users.begin(), change.users.end(),
                         [&](store::UserId u) { return role_of(u) == store::GroupRole::kMember; });
    case Kind::kUpdate:
      return (!change.name || *change.name == g.name) &&
             (!change.avatar_media_id || *change.avatar_media_id == g.avatar_media_id);
    case Kind::kCreate:
    case Kind::kLeave:
      return false;
  }
  return false;
}

const char* ChangeName(Kind kind) {
  switch (kind) {
    case Kind::kCreate:
      return "created";
    case Kind::kAdd:
      return "added";
    case Kind::kRemove:
      return "removed";
    case Kind::kPromote:
      return "promoted";
    case Kind::kDemote:
      return "demoted";
    case Kind::kUpdate:
      return "updated";
    case Kind::kLeave:
      return "left";
  }
  return "updated";
}

json::array IdArray(const std::vector<store::UserId>& ids) {
  json::array a;
  for (auto id : ids) a.push_back(json::value(IdToString(id)));
  return a;
}

}  // namespace

std::string GroupEventPayload(const store::GroupChange& c) {
  json::object e;
  e["type"] = "group";
  e["group_id"] = IdToString(c.group_id);
  e["change"] = ChangeName(c.kind);
  e["by"] = IdToString(c.actor);
  std::vector<store::UserId> users = c.users;
  if (c.kind == Kind::kCreate) users.insert(users.begin(), c.actor);
  if (c.kind == Kind::kLeave) users = {c.actor};
  e["users"] = IdArray(users);
  if (c.name) e["name"] = *c.name;
  if (c.avatar_media_id) e["avatar_media_id"] = *c.avatar_media_id;
  e["ts_ms"] = c.now_ms;
  return json::serialize(e);
}

// Parses the list of user ids under `key` (at most `max`), checking each
// exists when asked. Answers the error itself and returns nullopt on failure.
std::optional<std::vector<store::UserId>> Session::ParseUsers(const json::object& req,
                                                              const Rid& rid, std::string_view key,
                                                              std::size_t max, bool must_exist) {
  auto users = proto::GetArray(req, key, max);
  if (!users) {
    if (users.error().message.find("at most") != std::string::npos) {
      Error(rid, code::kTooManyMembers, "a group has at most 256 members");
    } else {
      Error(rid, code::kBadRequest, users.error().message);
    }
    return std::nullopt;
  }
  std::vector<store::UserId> ids;
  for (const auto& v : **users) {
    auto id = v.is_string() ? ParseId(v.get_string()) : std::nullopt;
    if (!id) {
      Error(rid, code::kBadRequest, std::string(key) + ": must be a list of user ids");
      return std::nullopt;
    }
    if (std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  }
  if (must_exist && !ids.empty()) {
    auto found = core_.store.GetUsers(ids);
    if (!found) {
      StoreError(rid, found.error(), "get_users");
      return std::nullopt;
    }
    if (found->size() != ids.size()) {
      Error(rid, code::kNotFound, "no such user");
      return std::nullopt;
    }
  }
  return ids;
}

void Session::ApplyGroupChange(store::GroupChange change, const Rid& rid, json::object result) {
  // Limited per device twice: as an op that writes, and by its fan-out
  // (everyone in the group now and everyone it adds hears of it).
  // A change that looks like it changes nothing pays no fan-out up front
  // (it will reach nobody); should it change something after all (another
  // change came first), the fan-out is charged once the store says so.
  if (OverLimit(core_.write_limiter, rid)) return;
  double fanout = static_cast<double>(change.users.size()) + 1;
  bool deferred = false;
  if (change.kind != Kind::kCreate) {
    auto g = core_.groups.Get(change.group_id);
    if (!g) return StoreError(rid, g.error(), "get_group");
    if (*g) {
      fanout += static_cast<double>((*g)->members.size());
      deferred = LooksLikeNoOp(change, **g);
    }
  }
  if (!deferred && OverLimit(core_.fanout_limiter, rid, fanout)) return;
  auto ticket = BeginWrite(rid);
  if (!ticket) return;
  change.actor = identity_.user;
  change.now_ms = NowMs();
  change.payload = GroupEventPayload(change);
  auto self = shared_from_this();
  const store::GroupId id = change.group_id;
  const store::UserId actor = identity_.user;
  const store::DeviceId actor_device = identity_.device;
  core_.store.ChangeGroup(
      std::move(change), [self, rid, id, actor, actor_device, ticket, deferred, fanout,
                          result = std::move(result)](Result<store::GroupChangeResult> r) {
        ticket->Done();
        if (!r) return self->StoreError(rid, r.error(), "change_group");
        using O = store::GroupChangeResult::Outcome;
        switch (r->outcome) {
          case O::kNotFound:
            return self->Error(rid, code::kNotFound, "no such group");
          case O::kNotMember:
            return self->Error(rid, code::kNotMember, "you are no longer a member");
          case O::kNotAdmin:
            return self->Error(rid, code::kNotAdmin, "only an admin may do that");
          case O::kTooManyMembers:
            return self->Error(rid, code::kTooManyMembers, "a group has at most 256 members");
          case O::kOk:
            break;
        }
        // A change that changes nothing wrote nothing and is not announced.
        if (!r->changed) return self->Ok(rid, result);
        Core& core = self->core_;
        if (deferred) core.fanout_limiter.Charge(IdToString(actor_device), MonoSeconds(), fanout);
        core.groups.Replace(id, r->group);
        core.Wake(r->appended);
        self->Ok(rid, result);
        if (!r->auto_promoted.empty() && r->group) {
          store::GroupChange promoted;
          promoted.kind = Kind::kPromote;
          promoted.group_id = id;
          promoted.actor = actor;
          promoted.users = r->auto_promoted;
          promoted.now_ms = NowMs();
          std::vector<store::UserId> members;
          for (const auto& m : r->group->members) members.push_back(m.user);
          core.store.AppendEvents(std::move(members), store::EventType::kGroup,
                                  GroupEventPayload(promoted), promoted.now_ms,
                                  [&core](Result<std::vector<store::Appended>> a) {
                                    if (a) core.Wake(*a);
                                  });
        }
      });
}

void Session::GroupCreate(const json::object& req, const Rid& rid) {
  auto name = proto::GetString(req, "name", kMaxGroupNameLength);
  if (!name) return Error(rid, code::kBadRequest, name.error().message);
  auto members = ParseUsers(req, rid, "members", 255, true);
  if (!members) return;
  std::erase(*members, identity_.user);
  store::GroupChange c;
  c.kind = Kind::kCreate;
  c.group_id = core_.ids.Next();
  c.users = std::move(*members);
  c.name = std::string(*name);
  json::object result;
  result["group_id"] = IdToString(c.group_id);
  ApplyGroupChange(std::move(c), rid, std::move(result));
}

void Session::GroupInfo(const json::object& req, const Rid& rid) {
  auto id = proto::GetId(req, "group_id");
  if (!id) return Error(rid, code::kBadRequest, id.error().message);
  auto g = core_.groups.Get(*id);
  if (!g) return StoreError(rid, g.error(), "get_group");
  if (!*g || !IsMember(**g, identity_.user)) {
    auto m = core_.groups.MembershipOf(*id, identity_.user);
    if (m && *m == Membership::kFormer) {
      return Error(rid, code::kNotMember, "you are no longer a member");
    }
    return Error(rid, code::kNotFound, "no such group");
  }
  const store::Group& group = **g;
  json::array members;
  for (const auto& m : group.members) {
    members.push_back(
        json::object{{"user", IdToString(m.user)},
                     {"role", m.role == store::GroupRole::kAdmin ? "admin" : "member"}});
  }
  json::object result;
  result["group_id"] = IdToString(group.id);
  result["name"] = group.name;
  result["members"] = std::move(members);
  result["created_ms"] = group.created_ms;
  if (!group.avatar_media_id.empty()) result["avatar_media_id"] = group.avatar_media_id;
  Ok(rid, std::move(result));
}

void Session::GroupMembers(const json::object& req, const Rid& rid, Kind kind) {
  auto id = proto::GetId(req, "group_id");
  if (!id) return Error(rid, code::kBadRequest, id.error().message);
  auto users = ParseUsers(req, rid, "users", 256, kind == Kind::kAdd);
  if (!users) return;
  store::GroupChange c;
  c.kind = kind;
  c.group_id = *id;
  c.users = std::move(*users);
  ApplyGroupChange(std::move(c), rid, {});
}

void Session::GroupSetRole(const json::object& req, const Rid& rid, Kind kind) {
  auto id = proto::GetId(req, "group_id");
  if (!id) return Error(rid, code::kBadRequest, id.error().message);
  auto user = proto::GetId(req, "user");
  if (!user) return Error(rid, code::kBadRequest, user.error().message);
  store::GroupChange c;
  c.kind = kind;
  c.group_id = *id;
  c.users = {*user};
  ApplyGroupChange(std::move(c), rid, {});
}

void Session::GroupAdd(const json::object& req, const Rid& rid) {
  GroupMembers(req, rid, Kind::kAdd);
}
void Session::GroupRemove(const json::object& req, const Rid& rid) {
  GroupMembers(req, rid, Kind::kRemove);
}
void Session::GroupPromote(const json::object& req, const Rid& rid) {
  GroupSetRole(req, rid, Kind::kPromote);
}
void Session::GroupDemote(const json::object& req, const Rid& rid) {
  GroupSetRole(req, rid, Kind::kDemote);
}

void Session::GroupUpdate(const json::object& req, const Rid& rid) {
  auto id = proto::GetId(req, "group_id");
  if (!id) return Error(rid, code::kBadRequest, id.error().message);
  auto name = proto::GetOptString(req, "name", kMaxGroupNameLength);
  if (!name) return Error(rid, code::kBadRequest, name.error().message);
  auto avatar = proto::GetOptId(req, "avatar_media_id");
  if (!avatar) return Error(rid, code::kBadRequest, avatar.error().message);
  store::GroupChange c;
  c.kind = Kind::kUpdate;
  c.group_id = *id;
  if (*name) c.name = std::string(**name);
  if (*avatar) {
    auto may = core_.MayReadMedia(IdToString(**avatar), identity_.user);
    if (!may) return StoreError(rid, may.error(), "get_media");
    if (!*may) return Error(rid, code::kNotFound, "avatar_media_id: no such media");
    c.avatar_media_id = IdToString(**avatar);
  }
  ApplyGroupChange(std::move(c), rid, {});
}

void Session::GroupLeave(const json::object& req, const Rid& rid) {
  auto id = proto::GetId(req, "group_id");
  if (!id) return Error(rid, code::kBadRequest, id.error().message);
  store::GroupChange c;
  c.kind = Kind::kLeave;
  c.group_id = *id;
  ApplyGroupChange(std::move(c), rid, {});
}

}  // namespace parley::core
