from django.urls import path

from . import ledger_views, views

app_name = "donations"

urlpatterns = [
    path("needs/", views.supermarket, name="supermarket"),
    path("needs/<int:pk>/", views.need_detail, name="need-detail"),
    path("needs/<int:pk>/pledge/", views.pledge_create, name="pledge-create"),
    path("donors/register/", views.donor_register, name="donor-register"),
    path("my/pledges/", views.my_pledges, name="my-pledges"),
    path("my/pledges/<int:pk>/cancel/", views.pledge_cancel, name="pledge-cancel"),
    path("my/pledges/<int:pk>/sent/", views.pledge_sent, name="pledge-sent"),
    path("pledges/<int:pk>/photo/", views.pledge_photo, name="pledge-photo"),
    path("village/needs/", views.village_needs, name="village-needs"),
    path("village/needs/new/", views.need_create, name="need-create"),
    path("village/needs/<int:pk>/edit/", views.need_edit, name="need-edit"),
    path("village/needs/<int:pk>/close/", views.need_close, name="need-close"),
    path("village/pledges/<int:pk>/confirm/", views.pledge_confirm, name="pledge-confirm"),
    path("village/pledges/<int:pk>/thank/", views.pledge_thank, name="pledge-thank"),
    path("bureau/review/", views.review_list, name="review-list"),
    path("bureau/review/<int:pk>/", views.need_review, name="need-review"),
    path("bureau/money/", views.money_list, name="money-list"),
    path("bureau/money/<int:pk>/", views.money_record, name="money-record"),
    path("my/pledges/<int:pk>/", views.pledge_detail, name="pledge-detail"),
    # The public ledger and its downloads (stable URLs, listed in the README).
    path("ledger/", ledger_views.ledger_list, name="ledger-list"),
    path("ledger/about/", ledger_views.ledger_about, name="ledger-about"),
    path("ledger/totals/", ledger_views.ledger_totals, name="ledger-totals"),
    path("ledger/ledger.jsonl", ledger_views.ledger_jsonl, name="ledger-jsonl"),
    path("ledger/ledger.csv", ledger_views.ledger_csv, name="ledger-csv"),
    path("ledger/checkpoint.json", ledger_views.checkpoint_latest, name="checkpoint-latest"),
    path("ledger/checkpoints.jsonl", ledger_views.checkpoints_jsonl, name="checkpoints-jsonl"),
    path("ledger/checkpoints/<int:number>.json", ledger_views.checkpoint_detail, name="checkpoint-detail"),
    path("ledger/public-key.txt", ledger_views.public_key, name="ledger-public-key"),
    path("ledger/verify_ledger.py", ledger_views.verifier, name="ledger-verifier"),
    path("ledger/entries/<int:index>/proof.json", ledger_views.entry_proof, name="entry-proof"),
    # Bureau staff: money in and out, audit, reports.
    path("bureau/ledger/", ledger_views.ledger_audit, name="ledger-audit"),
    path("bureau/ledger/gift/", ledger_views.gift_create, name="gift-create"),
    path("bureau/ledger/allocate/", ledger_views.allocation_create, name="allocation-create"),
    path("bureau/ledger/spend/", ledger_views.spend_create, name="spend-create"),
    path("bureau/ledger/<int:pk>/reverse/", ledger_views.transaction_reverse, name="transaction-reverse"),
    path("bureau/ledger/<int:pk>/voucher/", ledger_views.voucher_download, name="voucher-download"),
    path("bureau/ledger/report/", ledger_views.fund_report_view, name="fund-report"),
]
