from django.urls import path

from . import views

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
]
